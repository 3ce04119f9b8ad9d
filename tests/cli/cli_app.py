"""The app of the CLI tests: `flowexec worker --app tests.cli.cli_app:app`, and in-process."""

from __future__ import annotations

import asyncio
from typing import Any

from flowexec.errors import Fail
from flowexec.runtime import App, FlowContext

app = App()

ECHO = "cli.echo"
FAIL = "cli.fail"
SLOW = "cli.slow"
FAN = "cli.fan"


@app.flow(ECHO)
async def echo(ctx: FlowContext) -> dict[str, Any]:
    """Returns what it was given, and who ran it."""
    event = ctx.event
    return {
        "worker": ctx.worker_id,
        "integration": ctx.integration,
        "event": None if event is None else [event.name, event.payload],
    }


@app.flow(FAIL)
async def fail(ctx: FlowContext) -> None:
    await ctx.node("check", _refuse)


def _refuse() -> None:
    raise Fail("the input was refused", node_id="check")


@app.flow(SLOW)
async def slow(ctx: FlowContext) -> dict[str, Any]:
    """Ten node boundaries, so pause and stop have somewhere to act."""
    step_s = float((ctx.integration or {}).get("step_s", 0.1))
    for step in range(10):
        await ctx.node(f"step-{step}", asyncio.sleep, step_s)
    return {"worker": ctx.worker_id}


@app.flow(FAN)
async def fan(ctx: FlowContext) -> int:
    """Emits `fan` children of `ECHO` (or, with `fail_child`, one of `FAIL`) and returns at
    once, without waiting for them."""
    plan = ctx.integration or {}
    for n in range(int(plan.get("fan", 3))):
        await ctx.emit("child", {"n": n}, flow_id=ECHO)
    if plan.get("fail_child"):
        await ctx.emit("child", None, flow_id=FAIL)
    return 0

REPORT_SCHEDULE = "weekday-report"
app.schedule("0 9 * * 1-5", flow_id=ECHO, schedule_id=REPORT_SCHEDULE, timezone="Europe/Berlin")

empty_app = App()
"""An app with no flows: a worker must refuse to start on it."""
not_an_app = "a string"
