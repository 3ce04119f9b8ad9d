"""A recovery service whose last sweep failed while it held the lock still gives the lock back
when it stops, so that another instance can sweep while this store stays open (a worker given
a store it does not own leaves that store open)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from flowexec import open_store
from flowexec.runtime.recovery import RecoveryService


async def test_a_service_stopped_after_a_failed_sweep_releases_the_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "flowexec.db"
    url = f"sqlite:///{path}"
    async with (
        await open_store(url, lock_timeout_s=0.2, busy_timeout_ms=50) as store,
        await open_store(url) as other,
    ):
        service = RecoveryService(store, worker_id="rec", interval_s=30)
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another writer keeps the database a while
            with caplog.at_level(logging.WARNING, logger="flowexec.recovery"):
                task = asyncio.create_task(service.run())
                while not any("sweep skipped" in r.getMessage() for r in caplog.records):
                    assert not task.done(), task
                    await asyncio.sleep(0.02)
            # The sweep took the lock, then failed: the loop now waits for its next tick.
            assert not await other.try_acquire_recovery_lock(service.lock_id)
            service.stop()
            await asyncio.wait_for(task, 5)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await other.try_acquire_recovery_lock(service.lock_id)
