"""Three worker processes, 500 root executions and their children: each runs exactly once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from flowexec import ExecutionStatus
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER
from .processes import start_worker, stop_all, worker_log
from .worker_app import MAX_DEPTH, app, create_effects_table, read_effects

ROOTS = 500
WORKERS = 3


def fan_of(i: int) -> int:
    return i % 3


def expected_nested(fan: int) -> int:
    """Each of the root's `fan` children starts a chain down to MAX_DEPTH."""
    return fan * MAX_DEPTH


@pytest.mark.slow
async def test_three_worker_processes_run_every_execution_exactly_once(
    store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    create_effects_table(store_url, unique_prefix)
    client = await app.client(store)
    fans: dict[str, int] = {}
    for i in range(ROOTS):
        root_id = await client.create("tree", owner_id=OWNER, integration={"fan": fan_of(i)})
        fans[root_id] = fan_of(i)
    expected_total = ROOTS + sum(expected_nested(f) for f in fans.values())

    worker_ids = [f"proc-{n}" for n in range(WORKERS)]
    settings = {
        "concurrency": 20,
        "claim_timeout_ms": 15_000,  # generous: no run may be taken over under load
        "heartbeat_interval_ms": 1_000,
        "poll_interval_s": 0.1,
        "recovery": False,
    }
    processes = [start_worker(store_url, unique_prefix, w, tmp_path, **settings)
                 for w in worker_ids]
    try:
        await _wait_until_all_completed(store, expected_total, processes, tmp_path, worker_ids)
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [await asyncio.to_thread(p.wait, 20) for p in processes]
    finally:
        stop_all(processes)
    assert codes == [0] * WORKERS, [worker_log(tmp_path, w)[-2000:] for w in worker_ids]

    stats = await store.get_stats()
    assert {k: v for k, v in stats.counts_by_status.items() if v} == {
        "completed": expected_total
    }
    assert stats.active_claims == 0

    effects = read_effects(store_url, unique_prefix)
    runs = Counter(execution_id for execution_id, _, _ in effects)
    assert len(runs) == expected_total, "every execution ran"
    assert max(runs.values()) == 1, "no execution ran twice"
    by_worker = Counter(worker for _, worker, _ in effects)
    assert set(by_worker) <= set(worker_ids)
    assert len(by_worker) >= 2, f"the work was shared: {by_worker}"

    roots = await store.get_root_executions("tree", limit=ROOTS + 1)
    assert {r.execution.id for r in roots} == set(fans)
    for root in roots:
        fan = fans[root.execution.id]
        assert (root.levels, root.total_nested) == (
            MAX_DEPTH if fan else 0, expected_nested(fan)
        ), root.execution.id
        assert root.execution.result == {"depth": 0, "emitted": fan}

    depth_counts = Counter(depth for _, _, depth in effects)
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


async def _wait_until_all_completed(
    store: ExecutionStore,
    expected_total: int,
    processes: list[subprocess.Popen[bytes]],
    log_dir: Path,
    worker_ids: list[str],
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while True:
        stats = await store.get_stats()
        if stats.counts_by_status.get("completed", 0) == expected_total:
            return
        died = [w for w, p in zip(worker_ids, processes, strict=True) if p.poll() is not None]
        assert not died, [worker_log(log_dir, w)[-3000:] for w in died]
        assert loop.time() < deadline, f"not all completed in time: {stats.counts_by_status}"
        await asyncio.sleep(0.25)
