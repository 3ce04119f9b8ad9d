"""`max_running` across worker processes, measured from the runs' own start and finish marks."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowexec.store.protocol import ExecutionStore
from tests.marks import new_marks_table, read_marks
from tests.tables import Tables
from tests.worker_app import LIMITED, LIMITED_MAX_RUNNING, app
from tests.worker_processes import WorkerProcess, stop_processes, wait_all_finished

from .helpers import OWNER

EXECUTIONS = 16
WORKERS = 4


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment (a finish before a start at a tie)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = most = 0
    for _, change in edges:
        open_now += change
        most = max(most, open_now)
    return most


@pytest.mark.slow
async def test_four_worker_processes_never_run_more_than_max_running(
    backend: str, store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    marks = new_marks_table(backend, store_url, unique_prefix, tmp_path)
    client = await app.client(store)
    await client.create_many(
        LIMITED, [{"owner_id": OWNER, "integration": {"seconds": 0.2}}] * EXECUTIONS
    )
    settings = {
        "concurrency": 4,
        "claim_timeout_ms": 15_000,
        "heartbeat_interval_ms": 1_000,
        "poll_interval_s": 0.05,
        "recovery": False,
        **({"pool_max_size": 4} if backend == "postgres" else {}),
    }
    workers = [
        WorkerProcess(store_url, unique_prefix, f"limited-{n}", tmp_path, settings, marks=marks)
        for n in range(WORKERS)
    ]
    try:
        await wait_all_finished(Tables(store_url, unique_prefix), EXECUTIONS, workers, within=90)
        codes = [await w.terminate(within=20) for w in workers]
    finally:
        stop_processes(workers)
    assert codes == [0] * WORKERS, [w.tail(2000) for w in workers]

    runs: dict[tuple[str, str, int], dict[str, float]] = {}
    for kind, execution_id, worker, attempt, at in read_marks(marks, unique_prefix):
        runs.setdefault((execution_id, worker, attempt), {})[kind] = at
    assert len(runs) == EXECUTIONS and all(len(r) == 2 for r in runs.values())
    assert 1 <= most_at_once([(r["start"], r["finish"]) for r in runs.values()]) <= (
        LIMITED_MAX_RUNNING
    )
    stats = await store.get_stats()
    assert stats.counts_by_status.get("completed") == EXECUTIONS
