"""A store outage in the middle of a run costs a re-run, not one of the flow's retries."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flowexec import App, ExecutionStatus, FlowContext, open_store
from tests.store.sqlite.sqlite_helpers import write_lock_held

from .helpers import OWNER, running_worker


async def test_an_emit_that_meets_an_outage_is_not_a_counted_failure(tmp_path: Path) -> None:
    path = tmp_path / "flowexec.db"
    store = await open_store(f"sqlite:///{path}", busy_timeout_ms=50, lock_timeout_s=0.3)
    app = App()
    about_to_emit = asyncio.Event()
    outage_on = asyncio.Event()
    attempts: list[int] = []

    @app.flow("emitter", max_retries=0)
    async def emitter(ctx: FlowContext) -> str:
        attempts.append(ctx.attempt)
        if len(attempts) == 1:
            about_to_emit.set()
            await outage_on.wait()
        await ctx.emit("next", {"n": 1}, flow_id="child")
        return "emitted"

    @app.flow("child")
    async def child(ctx: FlowContext) -> None:
        return None

    try:
        client = await app.client(store)
        async with running_worker(app, store, claim_timeout_ms=10_000):
            execution_id = await client.create("emitter", owner_id=OWNER)
            await asyncio.wait_for(about_to_emit.wait(), 10)
            with write_lock_held(path, 1.0):  # writes fail after lock_timeout_s: an outage
                outage_on.set()
                await asyncio.sleep(0.8)
            done = await client.wait(execution_id, timeout=20)
        assert (done.status, done.result) == (ExecutionStatus.COMPLETED, "emitted")
        assert done.failure_count == 0, "max_retries=0: a counted failure would have failed it"
        # Re-runs during the outage meet it too; none of them is counted as a failure.
        assert len(attempts) >= 2 and set(attempts) == {1}
        children = await store.get_child_executions(execution_id)
        assert len(children) == 1
    finally:
        await store.close()
