"""When `Worker.run` returns, nothing it started is still running, even a recovery sweep that
hangs in the database.

The sweep is made to hang for real: another PostgreSQL session holds a row lock on a dead
worker's run (its lease lives on that row), so the sweep's `expire_old_claims` waits for it,
while the worker's own claims and heartbeats (other rows) go on.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from flowexec import App, FlowContext, Worker, open_store
from flowexec.model import new_execution
from flowexec.runtime import worker as worker_module

from .helpers import FAST, OWNER, wait_until

DEAD_LEASE_MS = 50


async def test_a_hung_recovery_sweep_does_not_outlive_the_worker(
    postgres_url: str, unique_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "GIVE_BACK_TIMEOUT_S", 0.5)  # the test need not wait 10 s
    app = App()

    @app.flow("here")
    async def here(ctx: FlowContext) -> None:
        return None

    store = await open_store(postgres_url, table_prefix=unique_prefix)
    try:
        dead = new_execution("elsewhere", OWNER)
        await store.create(dead)
        await store.claim_and_start("dead-worker", DEAD_LEASE_MS, limit=1, flow_ids=["elsewhere"])
        await asyncio.sleep(DEAD_LEASE_MS / 1000 * 2)  # the dead worker's lease lapses
        with psycopg.connect(postgres_url) as blocker:  # one transaction until the block ends
            blocker.execute(
                f"SELECT 1 FROM {unique_prefix}executions WHERE id = %s"
                " FOR UPDATE",
                (dead.id,),
            )
            before = asyncio.all_tasks()
            # The worker opens (and closes) a store of its own: none of its tasks may remain.
            worker = Worker(
                app, postgres_url, table_prefix=unique_prefix,
                **{**FAST, "recovery": True, "recovery_interval_s": 0.05},
            )
            running = asyncio.create_task(worker.run())
            await wait_until(
                lambda: _sweep_waits_for_lock(postgres_url, unique_prefix),
                what="the recovery sweep to wait for the row lock",
            )
            worker.stop()
            await asyncio.wait_for(running, 10)
            left = asyncio.all_tasks() - before - {running}
        assert not left, f"still running after Worker.run returned: {left}"
    finally:
        await store.close()


async def _sweep_waits_for_lock(url: str, prefix: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE %s",
            (f"%UPDATE {prefix}executions SET lease_status = 'expired'%",),
        ).fetchone()
    return bool(row and row[0])
