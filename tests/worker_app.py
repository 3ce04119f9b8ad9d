"""The app every worker subprocess of the tests runs: `python -m tests.worker_app`.

Configured by environment (`tests.worker_processes.WorkerProcess` sets it):
- FLOWEXEC_TEST_URL, FLOWEXEC_TEST_PREFIX: the store;
- FLOWEXEC_TEST_MARKS: where runs write their marks (`tests.marks`), for the flows that mark;
- FLOWEXEC_TEST_WORKER: JSON keyword arguments for `Worker`.

Every marking flow writes a `start` mark when its run begins and a `finish` mark just before
it returns. `chaos` and `linger` return the run whose completion the store accepted.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from flowexec import App, FlowContext, Worker
from flowexec.runtime.logs import configure_logging
from tests.marks import mark

URL_ENV = "FLOWEXEC_TEST_URL"
PREFIX_ENV = "FLOWEXEC_TEST_PREFIX"
MARKS_ENV = "FLOWEXEC_TEST_MARKS"
WORKER_ENV = "FLOWEXEC_TEST_WORKER"

TREE = "tree"
SLEEPER = "sleeper"
FLOW = "chaos"
LINGER = "linger"
STEPS = "steps"
NAP = "nap"
PARENT = "parent"
KID = "kid"
LIMITED = "limited"
LIMITED_MAX_RUNNING = 2
"""At most this many `limited` runs at once, across every worker."""
GHOST = "ghost"
"""A flow no worker registers: its executions are only ever moved by the tests and recovery."""
MAX_DEPTH = 3
"""How deep a `tree` grows below its root."""

app = App()


async def _mark(ctx: FlowContext, kind: str) -> None:
    target, prefix = os.environ[MARKS_ENV], os.environ[PREFIX_ENV]
    await ctx.node(
        kind, mark, target, prefix, kind, ctx.execution_id, ctx.worker_id, ctx.attempt,
        checkpoint=False,  # a mark per run: it counts the runs
    )


def _this_run(ctx: FlowContext) -> dict[str, Any]:
    return {"worker": ctx.worker_id, "attempt": ctx.attempt}


@app.flow(TREE, max_retries=3)
async def tree(ctx: FlowContext) -> dict[str, Any]:
    """Roots emit `fan` children; every descendant above MAX_DEPTH emits one more."""
    depth = ctx.execution.execution_depth
    await _mark(ctx, "start")
    assert ctx.integration is not None
    fan = int(ctx.integration["fan"]) if depth == 0 else 1
    emitted = 0
    if depth < MAX_DEPTH:
        for i in range(fan):
            await ctx.emit("branch", {"i": i, "depth": depth + 1})
            emitted += 1
    await _mark(ctx, "finish")
    return {"depth": depth, "emitted": emitted}


@app.flow(SLEEPER, max_retries=3)
async def sleeper(ctx: FlowContext) -> str:
    assert ctx.integration is not None
    await ctx.node("sleep", asyncio.sleep, float(ctx.integration["seconds"]))
    return "woke up"


@app.flow(FLOW, max_retries=1000)
async def chaos(ctx: FlowContext) -> dict[str, Any]:
    """A root's plan is its integration; a child's plan is the payload of its event.

    Plan: {"sleeps": [seconds, ...], "children": [{"i": n, "sleeps": [...]}, ...]}. The root
    emits its children after its first node, so that a run killed later re-emits them (the
    store must keep one of each). Each sleep is a checkpointed node `work-<n>` that marks
    each call and returns the attempt that ran it.
    """
    event = ctx.event
    plan = event.payload if event is not None else ctx.integration
    assert isinstance(plan, dict)
    await _mark(ctx, "start")
    if event is None:
        for child in plan.get("children", []):
            await ctx.emit("spawn", child)
    for n, seconds in enumerate(plan["sleeps"]):
        await ctx.node(f"work-{n}", _work, ctx, f"work-{n}", float(seconds))
    await _mark(ctx, "finish")
    return _this_run(ctx)


@app.flow(LINGER, max_retries=1000)
async def linger(ctx: FlowContext) -> dict[str, Any]:
    """Hangs on its first `hang_attempts` attempts (long enough to be killed mid-run), then
    completes at once."""
    assert ctx.integration is not None
    await _mark(ctx, "start")
    if ctx.attempt <= int(ctx.integration["hang_attempts"]):
        await ctx.node("hang", asyncio.sleep, 300)
    await _mark(ctx, "finish")
    return _this_run(ctx)


async def _marked_step(ctx: FlowContext, name: str, hang_on_first: bool = False) -> int:
    """A node's body: writes a `name` mark (one per call), and on the execution's first
    attempt hangs if asked, so that a test can kill its worker inside it."""
    target, prefix = os.environ[MARKS_ENV], os.environ[PREFIX_ENV]
    await asyncio.to_thread(
        mark, target, prefix, name, ctx.execution_id, ctx.worker_id, ctx.attempt
    )
    if hang_on_first and ctx.attempt == 1:
        await asyncio.sleep(300)
    return ctx.attempt


async def _work(ctx: FlowContext, name: str, seconds: float) -> int:
    attempt = await _marked_step(ctx, name)
    await asyncio.sleep(seconds)
    return attempt


@app.flow(STEPS, max_retries=3)
async def steps(ctx: FlowContext) -> list[int]:
    """Five checkpointed nodes; `node-4` hangs on the first attempt. Returns the attempt that
    ran each node: replayed nodes keep the attempt recorded when they ran."""
    return [
        await ctx.node(f"node-{n}", _marked_step, ctx, f"node-{n}", n == 4) for n in range(1, 6)
    ]


@app.flow(NAP, max_retries=3)
async def nap(ctx: FlowContext) -> str:
    """A node, a durable sleep of `seconds`, a node."""
    assert ctx.integration is not None
    await ctx.node("before", _marked_step, ctx, "before")
    await ctx.sleep(float(ctx.integration["seconds"]))
    await ctx.node("after", _marked_step, ctx, "after")
    return "rested"


@app.flow(PARENT, max_retries=3)
async def parent(ctx: FlowContext) -> int:
    """Emits `children` kids, waits for them all, returns the sum of their results."""
    assert ctx.integration is not None
    seconds = float(ctx.integration.get("kid_seconds", 0.05))
    ids = [
        await ctx.emit("kid", {"i": i, "seconds": seconds}, flow_id=KID)
        for i in range(int(ctx.integration["children"]))
    ]
    kids = await ctx.wait_for_children(ids, timeout=120)
    await _mark(ctx, "finish")
    return sum(int(k.result) for k in kids if isinstance(k.result, int))


@app.flow(KID, max_retries=3)
async def kid(ctx: FlowContext) -> int:
    assert ctx.event is not None and isinstance(ctx.event.payload, dict)
    await asyncio.sleep(float(ctx.event.payload["seconds"]))
    return int(ctx.event.payload["i"])
@app.flow(LIMITED, max_running=LIMITED_MAX_RUNNING)
async def limited(ctx: FlowContext) -> dict[str, Any]:
    """Marks, sleeps `seconds`, marks: its marks bound the time it ran."""
    assert ctx.integration is not None
    await _mark(ctx, "start")
    await ctx.node("work", asyncio.sleep, float(ctx.integration["seconds"]))
    await _mark(ctx, "finish")
    return _this_run(ctx)


async def main() -> None:
    configure_logging("INFO")
    worker = Worker(
        app,
        os.environ[URL_ENV],
        table_prefix=os.environ[PREFIX_ENV],
        **json.loads(os.environ.get(WORKER_ENV, "{}")),
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
