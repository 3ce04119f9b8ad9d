"""One process: the event loop keeps running while SQLite waits, locks are retried inside the
store, callers of one store are serialised, and the recovery lock excludes other stores."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlite_helpers import write_lock_held

from flowexec import ExecutionStatus, UpdateExecutionStatusParams, new_execution, open_store
from flowexec.errors import StoreUnavailable
from flowexec.store.sqlite import SqliteExecutionStore


async def _sqlite(path: Path, **options: object) -> SqliteExecutionStore:
    store = await open_store(f"sqlite:///{path}", **options)  # type: ignore[arg-type]
    assert isinstance(store, SqliteExecutionStore)
    return store


async def test_the_event_loop_keeps_ticking_while_the_store_waits_for_a_lock(
    tmp_path: Path,
) -> None:
    """Another connection holds the write lock for a second; the store waits on its own
    thread (busy timeout, then retries), the loop ticks on, and no lock error escapes."""
    path = tmp_path / "x.db"
    store = await _sqlite(path, busy_timeout_ms=50)
    try:
        execution = new_execution("flow", "owner")
        await store.create(execution)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        with write_lock_held(path, 1.0):
            started = time.monotonic()
            claims = await store.claim_next("worker", 60_000)
            waited = time.monotonic() - started
        ticking.cancel()
        assert [c.execution_id for c in claims] == [execution.id]
        assert waited >= 0.5, "the claim did not wait for the other writer"
        assert ticks >= 0.5 * waited / 0.01, f"only {ticks} ticks in {waited:.2f} s"
    finally:
        await store.close()


async def test_reads_go_on_while_another_connection_writes(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    store = await _sqlite(path)
    try:
        execution = new_execution("flow", "owner")
        await store.create(execution)
        with write_lock_held(path, 1.0):
            started = time.monotonic()
            assert await store.get(execution.id) is not None
            assert await store.get_root_executions("flow")
            assert time.monotonic() - started < 0.5, "WAL readers must not wait for the writer"
    finally:
        await store.close()


async def test_a_lock_held_past_lock_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    store = await _sqlite(path, busy_timeout_ms=20, lock_timeout_s=0.3)
    try:
        execution = new_execution("flow", "owner")
        with write_lock_held(path, 2.0):
            with pytest.raises(StoreUnavailable) as info:
                await store.create(execution)
            assert str(path) in str(info.value)
            assert "stayed locked" in str(info.value)
        assert await store.get(execution.id) is None
        await store.create(execution)  # and the store works again once the lock is gone
        assert await store.get(execution.id) is not None
    finally:
        await store.close()


async def test_concurrent_callers_of_one_store_are_serialised(tmp_path: Path) -> None:
    store = await _sqlite(tmp_path / "x.db")
    try:
        ids = []
        for _ in range(40):
            execution = new_execution("flow", "owner")
            await store.create(execution)
            ids.append(execution.id)
        batches = await asyncio.gather(
            *(store.claim_next(f"worker-{n}", 60_000, limit=3) for n in range(30))
        )
        claimed = Counter(c.execution_id for batch in batches for c in batch)
        assert sorted(claimed) == sorted(ids)
        assert set(claimed.values()) == {1}

        async def finish(execution_id: str, worker_id: str, epoch: int) -> bool:
            for status in (ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED):
                params = UpdateExecutionStatusParams(
                    execution_id, status, worker_id=worker_id, epoch=epoch
                )
                assert await store.update_execution_status(params)
            return True

        finished = await asyncio.gather(
            *(finish(c.execution_id, c.worker_id, c.epoch) for batch in batches for c in batch)
        )
        assert len(finished) == 40
        statuses = await store.get_statuses(ids)
        assert set(statuses.values()) == {ExecutionStatus.COMPLETED}
    finally:
        await store.close()


async def test_two_stores_on_one_file_exclude_each_other_from_the_recovery_lock(
    tmp_path: Path,
) -> None:
    one = await _sqlite(tmp_path / "x.db")
    two = await _sqlite(tmp_path / "x.db")
    other_prefix = await _sqlite(tmp_path / "x.db", table_prefix="other_")
    try:
        assert await one.try_acquire_recovery_lock(3) is True
        assert await one.try_acquire_recovery_lock(3) is True  # re-entrant for its holder
        assert await two.try_acquire_recovery_lock(3) is False
        assert await two.try_acquire_recovery_lock(4) is True  # lock ids are independent
        assert await other_prefix.try_acquire_recovery_lock(3) is True  # and prefixes too
        assert await two.release_recovery_lock(3) is False  # not the holder
        assert await one.release_recovery_lock(3) is True
        assert await one.release_recovery_lock(3) is False
        assert await two.try_acquire_recovery_lock(3) is True
        assert await one.try_acquire_recovery_lock(3) is False
        lock_file = two.recovery_locks.path(3)
        assert lock_file is not None and lock_file.parent == tmp_path
        assert lock_file.name == "x.db.flowexec_recovery-3.lock"
        assert lock_file.exists()
        await two.close()  # closing frees every lock it held, and removes its files
        assert not lock_file.exists()
        assert await one.try_acquire_recovery_lock(3) is True
        assert await one.try_acquire_recovery_lock(4) is True
        await one.close()
        await other_prefix.close()
        assert sorted(tmp_path.glob("*.lock")) == []  # noqa: ASYNC240 - a test listing
    finally:
        for store in (one, two, other_prefix):
            await store.close()


async def test_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = await _sqlite(tmp_path / "x.db")
    await store.close()
    await store.close()  # twice is harmless
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.get("EX1")
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.try_acquire_recovery_lock(1)


async def test_wait_for_work_wakes_for_another_process_commit_within_the_poll_interval(
    tmp_path: Path,
) -> None:
    waiter = await _sqlite(tmp_path / "x.db", commit_poll_interval_s=0.05)
    writer = await _sqlite(tmp_path / "x.db")
    try:
        waiting = asyncio.create_task(waiter.wait_for_work(30))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        started = time.monotonic()
        await writer.create(new_execution("flow", "owner"))
        await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        await waiter.wait_for_work(0.3)  # nothing new: the full timeout
        assert time.monotonic() - started >= 0.29
    finally:
        await waiter.close()
        await writer.close()
