"""The app of the supervisor tests: `flowexec worker --app tests.cli.group_app:app`."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from flowexec.runtime import App, FlowContext

app = App()

HOLD = "group.hold"
QUICK = "group.quick"


@app.flow(HOLD)
async def hold(ctx: FlowContext) -> dict[str, Any]:
    """The first attempt runs until its process is killed; the next one returns at once."""
    if ctx.attempt == 1:
        await ctx.node("hold", asyncio.sleep, 3600)
    return {"worker": ctx.worker_id, "pid": os.getpid(), "attempt": ctx.attempt}


@app.flow(QUICK)
async def quick(ctx: FlowContext) -> dict[str, Any]:
    """Says which process ran it."""
    return {"worker": ctx.worker_id, "pid": os.getpid()}


STEADY = "group.steady"


@app.flow(STEADY)
async def steady(ctx: FlowContext) -> dict[str, Any]:
    """A second of work in ten nodes: long enough to be caught running by a stop signal."""
    for step in range(10):
        await ctx.node(f"step-{step}", asyncio.sleep, 0.1)
    return {"worker": ctx.worker_id, "pid": os.getpid()}
