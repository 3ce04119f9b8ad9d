"""Several OS processes on one SQLite file: draining the queue, the recovery lock, migrating.

Each child is a real interpreter (`sqlite_procs.py`) with its own store; the tests are plain
functions that drive the parent's own store with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlite_helpers import children, schema

from flowexec import ExecutionStatus, new_execution, open_store
from flowexec.store.migrations import load_migrations

PREFIX = "flowexec_"


async def _create(url: str, count: int) -> list[str]:
    async with await open_store(url, table_prefix=PREFIX) as store:
        ids = []
        for n in range(count):
            execution = new_execution(f"flow-{n % 3}", "owner")
            await store.create(execution)
            ids.append(execution.id)
        return ids


async def _final_state(url: str, ids: list[str]) -> tuple[Counter[str], int]:
    async with await open_store(url, table_prefix=PREFIX, migrate=False) as store:
        statuses = await store.get_statuses(ids)
        return Counter(s.value for s in statuses.values()), len(await store.get_active_claims())


@pytest.mark.parametrize(
    "busy_timeout_ms",
    [5000, 0],
    ids=["default-busy-timeout", "no-busy-timeout-every-conflict-retried-by-flowexec"],
)
def test_four_processes_drain_two_thousand_executions_each_claimed_once(
    tmp_path: Path, busy_timeout_ms: int
) -> None:
    url = f"sqlite:///{tmp_path / 'drain.db'}"
    ids = asyncio.run(_create(url, 2000))
    workers = [("drain", url, PREFIX, f"worker-{n}", str(busy_timeout_ms)) for n in range(4)]
    with children(*workers) as procs:
        for proc in procs:
            assert proc.read() == "ready"
        for proc in procs:
            proc.go()
        results = [proc.read(timeout=300) for proc in procs]
        exits = [proc.finish() for proc in procs]

    for result, (code, stderr) in zip(results, exits, strict=True):
        assert "error" not in result, result
        assert code == 0, stderr
        assert "locked" not in stderr, stderr
    claimed = [execution_id for result in results for execution_id in result["claimed"]]
    duplicates = [i for i, n in Counter(claimed).items() if n > 1]
    assert not duplicates, f"claimed more than once: {duplicates[:5]}"
    assert sorted(claimed) == sorted(ids)
    assert all(result["claimed"] for result in results), "every process took part"
    statuses, live_claims = asyncio.run(_final_state(url, ids))
    assert statuses == {ExecutionStatus.COMPLETED.value: 2000}
    assert live_claims == 0


async def _try_lock(url: str, lock_id: int) -> tuple[bool, float]:
    async with await open_store(url, table_prefix=PREFIX, migrate=False) as store:
        started = time.monotonic()
        acquired = await store.try_acquire_recovery_lock(lock_id)
        return acquired, time.monotonic() - started


def test_lock_of_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    """flock locks die with their process: no lease to wait out."""
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    asyncio.run(_create(url, 0))
    with children(("hold-lock", url, PREFIX, "7")) as (holder,):
        assert holder.read() == {"acquired": True}
        assert asyncio.run(_try_lock(url, 7))[0] is False, "a second process took a held lock"
        assert asyncio.run(_try_lock(url, 8))[0] is True, "another lock id is independent"
        holder.proc.send_signal(signal.SIGKILL)
        assert holder.proc.wait(timeout=30) == -signal.SIGKILL
        acquired, seconds = asyncio.run(_try_lock(url, 7))
    assert acquired is True
    assert seconds < 1.0


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_migrating_at_once_apply_each_migration_once(
    tmp_path: Path, processes: int
) -> None:
    path = tmp_path / "migrate.db"
    url = f"sqlite:///{path}"
    migrators = [("migrate", url, PREFIX)] * processes
    with children(*migrators) as procs:
        for proc in procs:
            assert proc.read() == "ready"
        for proc in procs:
            proc.go()
        results = [proc.read() for proc in procs]
        exits = [proc.finish() for proc in procs]
    assert all(code == 0 for code, _ in exits), exits
    applied = sorted(tuple(r["applied"]) for r in results)
    every = tuple(m.name for m in load_migrations("flowexec.store.sqlite", PREFIX))
    assert applied == [()] * (processes - 1) + [every], results

    fresh = tmp_path / "fresh.db"
    asyncio.run(_create(f"sqlite:///{fresh}", 0))
    assert schema(path) == schema(fresh)
