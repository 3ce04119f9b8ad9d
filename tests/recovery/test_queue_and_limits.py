"""Recovery leaves the queue alone, however deep, and counts a dying worker's run exactly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from flowexec import ExecutionStatus, RecoveryReason, new_execution
from flowexec.runtime.recovery import RecoveryService
from flowexec.store.protocol import ExecutionStore
from tests.conftest import StoreFactory
from tests.marks import new_marks_table, read_marks
from tests.tables import Tables
from tests.worker_app import GHOST, LINGER, app
from tests.worker_processes import WorkerProcess, stop_processes

from .support import plant_dead_run, wait_for_mark, worker_settings

RUNNABLE = 1_500
NOT_STARTED = 500
CLAIMED_NOT_STARTED = 20
DEAD = 100
ROUNDS = 25


async def test_sweeps_leave_a_deep_backlog_untouched(
    backend: str, store_factory: StoreFactory, store_url: str, unique_prefix: str
) -> None:
    fast = {"synchronous": "normal"} if backend == "sqlite" else {}
    store_a = await store_factory(**fast)
    store_b = await store_factory(**fast)
    tables = Tables(store_url, unique_prefix)

    queued: list[str] = []
    for n in range(RUNNABLE + NOT_STARTED):
        execution = new_execution(GHOST, "backlog", integration={"n": n})
        await store_a.create(execution, start=n < RUNNABLE)
        queued.append(execution.id)
    # Claimed by a worker that died before starting them: still merely queued.
    for execution_id in queued[:CLAIMED_NOT_STARTED]:
        assert await store_a.claim_execution(execution_id, "died-before-start", 1) is not None
    dead = [await plant_dead_run(store_a, "dead-worker") for _ in range(DEAD)]
    # Their 1 ms leases have lapsed: marked expired first, as every sweep begins, since the
    # lease lives on the execution row; the sweeps must then change nothing else.
    await store_a.expire_old_claims()
    before = await tables.raw_executions()

    # Two sweepers at once, without the lock, in small batches: each dead run once.
    direct = 0
    while True:
        a, b = await asyncio.gather(
            store_a.recover_executions("sweeper-a", limit=10),
            store_b.recover_executions("sweeper-b", limit=10),
        )
        direct += len(a) + len(b)
        if not a and not b:
            break
    # Then the services, as the workers run them: only the lock holder sweeps.
    services = [
        RecoveryService(store_a, worker_id="service-a", interval_s=0.05),
        RecoveryService(store_b, worker_id="service-b", interval_s=0.05),
    ]
    reports = []
    for _ in range(ROUNDS):
        round_reports = await asyncio.gather(*(s.sweep_once() for s in services))
        assert sum(r is not None for r in round_reports) == 1, round_reports
        reports += [r for r in round_reports if r is not None]

    after = await tables.raw_executions()
    recoveries = await tables.recoveries()
    print(
        f"\nbacklog[{backend}]: {len(queued)} queued ({NOT_STARTED} not started, "
        f"{CLAIMED_NOT_STARTED} claimed by a worker that died before starting them), "
        f"{DEAD} dead runs; {direct} recovered by two concurrent sweepers, then "
        f"{len(reports)} leader sweeps recovered {sum(r.recovered for r in reports)}"
    )
    assert len(after) == len(before) == len(queued) + DEAD
    assert {execution_id: after[execution_id] for execution_id in queued} == {
        execution_id: before[execution_id] for execution_id in queued
    }
    assert {r.execution_id for r in recoveries} == set(dead)
    assert direct == len(recoveries) == DEAD
    assert sum(r.recovered for r in reports) == 0
    for execution_id in dead:
        execution = await store_a.get(execution_id)
        assert execution is not None
        assert (execution.status, execution.failure_count) == (ExecutionStatus.CREATED, 1)
        [record] = await store_a.get_recovery_history(execution_id)
        assert (record.recovery_reason, record.previous_worker_id) == (
            RecoveryReason.EXPIRED_CLAIM, "dead-worker"
        )


MAX_FAILURES = 3


async def test_a_run_whose_worker_dies_max_failures_times_ends_failed(
    backend: str, store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    marks = new_marks_table(backend, store_url, unique_prefix, tmp_path)
    settings = worker_settings(backend, recovery_max_failures=MAX_FAILURES)
    client = await app.client(store)
    execution_id = await client.create(
        LINGER, owner_id="mortal", integration={"hang_attempts": 1_000}
    )

    def spawn(n: int) -> WorkerProcess:
        return WorkerProcess(
            store_url, unique_prefix, f"mortal-{n}", tmp_path / "logs", settings, marks=marks
        )

    workers = [spawn(1)]
    try:
        for attempt in range(1, MAX_FAILURES + 1):
            current = workers[-1]
            await wait_for_mark(
                marks, unique_prefix, "start", execution_id, current.worker_id, attempt,
                workers=workers,
            )
            workers.append(spawn(attempt + 1))  # the next one is up before this one dies
            await workers[-1].wait_started()
            await current.kill()
        final = await client.wait(execution_id, timeout=30)
        await asyncio.sleep(4 * 0.5)  # more sweeps: nothing moves a failed execution
        later = await client.get(execution_id)
        code = await workers[-1].terminate()
    finally:
        stop_processes(workers)

    assert code == 0, workers[-1].tail()
    history = await store.get_recovery_history(execution_id)
    print(
        f"\nmax failures[{backend}]: killed {MAX_FAILURES} times -> {final.status.value}, "
        f"failure_count {final.failure_count}, records "
        f"{[(r.recovery_reason, r.previous_worker_id) for r in history]}"
    )
    assert final.status is ExecutionStatus.FAILED
    assert final.failure_count == MAX_FAILURES
    assert final.error_message is not None
    assert f"gave up after {MAX_FAILURES} failures" in final.error_message
    assert [r.recovery_reason for r in history] == (
        [RecoveryReason.EXPIRED_CLAIM] * (MAX_FAILURES - 1)
        + [RecoveryReason.MAX_FAILURES_EXCEEDED]
    )
    assert [r.previous_worker_id for r in history] == [
        f"mortal-{n}" for n in range(1, MAX_FAILURES + 1)
    ]
    assert [r.previous_status for r in history] == ["running"] * MAX_FAILURES
    assert {r.recovered_by_worker for r in history} <= {w.worker_id for w in workers[1:]}
    assert later == final
    runs = sorted(
        (m[0], m[2], m[3]) for m in read_marks(marks, unique_prefix) if m[1] == execution_id
    )
    assert runs == [("start", f"mortal-{n}", n) for n in range(1, MAX_FAILURES + 1)]
