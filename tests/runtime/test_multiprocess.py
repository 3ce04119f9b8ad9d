"""Three worker processes, 500 root executions and their children: each runs exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flowexec import ExecutionStatus
from flowexec.store.protocol import ExecutionStore
from tests.accounting import account, assert_each_ran_once
from tests.marks import new_marks_table, read_marks
from tests.tables import Tables
from tests.worker_app import MAX_DEPTH, TREE, app
from tests.worker_processes import WorkerProcess, stop_processes, wait_all_finished

from .helpers import OWNER

ROOTS = 500
WORKERS = 3


def fan_of(i: int) -> int:
    return i % 3


def expected_nested(fan: int) -> int:
    """Each of the root's `fan` children starts a chain down to MAX_DEPTH."""
    return fan * MAX_DEPTH


def planned_tree(fan: int) -> dict[str, Any]:
    """A root's plan for `account`: `fan` children, each the head of a chain to MAX_DEPTH."""

    def chain(i: int, depth: int) -> dict[str, Any]:
        return {"i": i, "children": [chain(0, depth + 1)] if depth < MAX_DEPTH else []}

    return {"children": [chain(i, 1) for i in range(fan)]}


@pytest.mark.slow
async def test_three_worker_processes_run_every_execution_exactly_once(
    backend: str, store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    marks = new_marks_table(backend, store_url, unique_prefix, tmp_path)
    tables = Tables(store_url, unique_prefix)
    client = await app.client(store)
    fans: dict[str, int] = {}
    for i in range(ROOTS):
        root_id = await client.create(TREE, owner_id=OWNER, integration={"fan": fan_of(i)})
        fans[root_id] = fan_of(i)
    expected_total = ROOTS + sum(expected_nested(f) for f in fans.values())

    settings = {
        "concurrency": 20,
        "claim_timeout_ms": 15_000,  # generous: no run may be taken over under load
        "heartbeat_interval_ms": 1_000,
        "poll_interval_s": 0.1,
        "recovery": False,
    }
    workers = [
        WorkerProcess(store_url, unique_prefix, f"proc-{n}", tmp_path, settings, marks=marks)
        for n in range(WORKERS)
    ]
    try:
        await wait_all_finished(tables, expected_total, workers, within=120)
        codes = [await w.terminate(within=20) for w in workers]
    finally:
        stop_processes(workers)
    assert codes == [0] * WORKERS, [w.tail(2000) for w in workers]

    stats = await store.get_stats()
    assert {k: v for k, v in stats.counts_by_status.items() if v} == {
        "completed": expected_total
    }
    assert stats.active_claims == 0

    executions = await tables.executions()
    runs = read_marks(marks, unique_prefix)
    acc = account(
        root_ids={root_id: planned_tree(fan) for root_id, fan in fans.items()},
        executions=executions,
        recoveries=await tables.recoveries(),
        marks=runs,
        results_name_runs=False,
    )
    assert_each_ran_once(acc, total=expected_total)
    starts = [(execution_id, worker) for kind, execution_id, worker, _, _ in runs
              if kind == "start"]
    by_worker = Counter(worker for _, worker in starts)
    assert set(by_worker) <= {w.worker_id for w in workers}
    assert len(by_worker) >= 2, f"the work was shared: {by_worker}"

    roots = await store.get_root_executions(TREE, limit=ROOTS + 1)
    assert {r.execution.id for r in roots} == set(fans)
    for root in roots:
        fan = fans[root.execution.id]
        assert (root.levels, root.total_nested) == (
            MAX_DEPTH if fan else 0, expected_nested(fan)
        ), root.execution.id
        assert root.execution.result == {"depth": 0, "emitted": fan}

    depth_counts = Counter(executions[execution_id].depth for execution_id, _ in starts)
    chains = sum(fans.values())
    assert depth_counts == Counter({0: ROOTS, **{d: chains for d in range(1, MAX_DEPTH + 1)}})

    for root_id in [r for r, f in fans.items() if f == 2][:10]:
        tree = await store.get_execution_tree(root_id)
        assert len(tree) == 1 + expected_nested(2)
        ids = {node.id: node for node in tree}
        for node in tree:
            e = node.execution
            assert e.status is ExecutionStatus.COMPLETED and e.failure_count == 0
            assert e.root_execution_id == root_id and e.execution_depth == node.level
            assert e.result == {"depth": node.level, "emitted": _emits(node.level, 2)}
            if node.level:
                assert node.parent_id in ids and ids[node.parent_id].level == node.level - 1
                assert e.external_events is not None
                assert e.external_events[0]["event_name"] == "branch"


def _emits(depth: int, fan: int) -> int:
    if depth >= MAX_DEPTH:
        return 0
    return fan if depth == 0 else 1
