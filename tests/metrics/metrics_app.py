"""The app of the metrics tests: a flow that completes, one that fails, one that fails once."""

from __future__ import annotations

from flowexec.errors import Fail
from flowexec.runtime import App, FlowContext

app = App()

OK = "metrics.ok"
REFUSED = "metrics.refused"
FLAKY = "metrics.flaky"
IDLE = "metrics.idle"
"""A flow no worker of these tests runs: its executions stay queued."""


@app.flow(OK)
async def ok(ctx: FlowContext) -> str:
    return "done"


@app.flow(REFUSED, max_retries=0)
async def refused(ctx: FlowContext) -> None:
    raise Fail("refused on purpose")


@app.flow(FLAKY, max_retries=1)
async def flaky(ctx: FlowContext) -> int:
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails")
    return ctx.attempt
