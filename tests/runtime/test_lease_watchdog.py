"""A run stops when its lease runs out, even while its heartbeat hangs instead of failing.

The database is made to hang the heartbeat for real: another connection holds the SQLite
write lock, so `extend_claims` (a write) waits, while reads go on. A worker that only
reacted to a heartbeat *error* kept running nodes for as long as the lock was held, while
the lease it no longer had could be taken over by another worker.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from flowexec import App, ExecutionStatus, FlowContext, open_store
from tests.store.sqlite.sqlite_helpers import write_lock_held

from .helpers import OWNER, running_worker, wait_until

LEASE_MS = 400
HOLD_S = 3.0


async def test_a_hanging_heartbeat_does_not_keep_a_run_past_its_lease(tmp_path: Path) -> None:
    path = tmp_path / "flowexec.db"
    store = await open_store(f"sqlite:///{path}", lock_timeout_s=30)
    app = App()
    node_starts: list[float] = []

    def tick() -> None:
        node_starts.append(time.monotonic())
        time.sleep(0.05)

    @app.flow("long")
    async def long_run(ctx: FlowContext) -> None:
        for n in range(400):
            await ctx.node(f"step-{n}", tick)

    try:
        client = await app.client(store)
        async with running_worker(
            app, store, claim_timeout_ms=LEASE_MS, heartbeat_interval_ms=100, recovery=False
        ):
            execution_id = await client.create("long", owner_id=OWNER)
            await wait_until(lambda: _started(node_starts), what="the run to start")
            with write_lock_held(path, HOLD_S):
                locked_at = time.monotonic()
                await asyncio.sleep(HOLD_S - 0.5)
                during_hold = [t for t in node_starts if t > locked_at]
        # The lease lapses at most LEASE_MS after the last heartbeat that went through; a
        # node started after that would be work done without a lease.
        last_allowed = locked_at + LEASE_MS / 1000 + 0.25
        late = [round(t - locked_at, 2) for t in during_hold if t > last_allowed]
        assert not late, f"nodes started {late} s into the hold, after the lease ran out"
        execution = await store.get(execution_id)
        assert execution is not None
        assert execution.status is not ExecutionStatus.COMPLETED
    finally:
        await store.close()


async def _started(node_starts: list[float]) -> bool:
    return len(node_starts) >= 2
