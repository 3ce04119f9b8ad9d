"""Durable steps across worker processes killed with SIGKILL (docs/architecture.md §11): a
re-run replays the nodes that completed, a durable sleep and a wait for children survive the
worker that started them, and a parent waiting for children holds no worker slot."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from pathlib import Path

from flowexec import ExecutionStatus
from flowexec.store.protocol import ExecutionStore
from tests.marks import new_marks_table, read_marks
from tests.worker_app import NAP, PARENT, STEPS, app
from tests.worker_processes import WorkerProcess, stop_processes

from .support import wait_for_mark, worker_settings


def node_runs(marks: str, prefix: str, execution_id: str) -> Counter[str]:
    return Counter(m[0] for m in read_marks(marks, prefix) if m[1] == execution_id)


async def wait_for_checkpoint(
    store: ExecutionStore, execution_id: str, node_id: str, worker: WorkerProcess
) -> None:
    for _ in range(600):
        if node_id in await store.get_checkpoints(execution_id):
            return
        assert worker.alive, worker.tail()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{node_id} of {execution_id} never recorded\n{worker.tail()}")


async def test_a_worker_killed_inside_node_4_leaves_nodes_1_to_3_done(
    backend: str, store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    marks = new_marks_table(backend, store_url, unique_prefix, tmp_path)
    settings = worker_settings(backend)
    client = await app.client(store)
    execution_id = await client.create(STEPS, owner_id="steps")
    workers = [WorkerProcess(store_url, unique_prefix, "steps-1", tmp_path / "logs", settings,
                             marks=marks)]
    try:
        await wait_for_mark(marks, unique_prefix, "node-4", execution_id, "steps-1", 1,
                            workers=workers)
        await workers[0].kill()
        workers.append(WorkerProcess(store_url, unique_prefix, "steps-2", tmp_path / "logs",
                                     settings, marks=marks))
        done = await client.wait(execution_id, timeout=60)
        code = await workers[-1].terminate()
    finally:
        stop_processes(workers)
    assert code == 0, workers[-1].tail()
    assert done.status is ExecutionStatus.COMPLETED, done
    assert done.result == [1, 1, 1, 2, 2]
    assert node_runs(marks, unique_prefix, execution_id) == {
        "node-1": 1, "node-2": 1, "node-3": 1, "node-4": 2, "node-5": 1,
    }
    replayed = await store.get_events(execution_id, types=["node:replayed"])
    assert [e.data["node_id"] for e in replayed] == ["node-1", "node-2", "node-3"]


async def test_a_worker_killed_during_a_durable_sleep_loses_nothing(
    backend: str, store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    marks = new_marks_table(backend, store_url, unique_prefix, tmp_path)
    settings = worker_settings(backend, concurrency=1)
    client = await app.client(store)
    execution_id = await client.create(NAP, owner_id="nap", integration={"seconds": 2})
    workers = [WorkerProcess(store_url, unique_prefix, "nap-1", tmp_path / "logs", settings,
                             marks=marks)]
    try:
        await wait_for_checkpoint(store, execution_id, "sleep#1", workers[0])
        await workers[0].kill()
        workers.append(WorkerProcess(store_url, unique_prefix, "nap-2", tmp_path / "logs",
                                     settings, marks=marks))
        done = await client.wait(execution_id, timeout=60)
        code = await workers[-1].terminate()
    finally:
        stop_processes(workers)
    assert code == 0, workers[-1].tail()
    assert done.status is ExecutionStatus.COMPLETED and done.result == "rested"
    assert node_runs(marks, unique_prefix, execution_id) == {"before": 1, "after": 1}
    wake_at = (await store.get_checkpoints(execution_id))["sleep#1"]
    [after] = [e for e in await store.get_events(execution_id, types=["node:started"])
               if e.data["node_id"] == "after"]
    assert isinstance(wake_at, dict)
    assert after.at >= datetime.fromisoformat(str(wake_at["wake_at"])), "woke after the time"


async def test_a_parent_waiting_for_20_children_survives_its_worker_being_killed(
    backend: str, store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    """Concurrency 2 and two parents: every slot may hold a waiting parent, and the children
    still run because a waiting parent gives its claim back."""
    marks = new_marks_table(backend, store_url, unique_prefix, tmp_path)
    settings = worker_settings(backend, concurrency=2)
    client = await app.client(store)
    plan = {"children": 20, "kid_seconds": 0.1}
    parents = [await client.create(PARENT, owner_id="parents", integration=plan)
               for _ in range(2)]
    workers = [WorkerProcess(store_url, unique_prefix, "parents-1", tmp_path / "logs",
                             settings, marks=marks)]
    try:
        await wait_for_checkpoint(store, parents[0], "wait#1", workers[0])
        await workers[0].kill()
        workers.append(WorkerProcess(store_url, unique_prefix, "parents-2", tmp_path / "logs",
                                     settings, marks=marks))
        done = [await client.wait(p, timeout=90, tree=True) for p in parents]
        code = await workers[-1].terminate()
    finally:
        stop_processes(workers)
    assert code == 0, workers[-1].tail()
    assert [(d.status, d.result) for d in done] == [(ExecutionStatus.COMPLETED, 190)] * 2
    for parent_id in parents:
        kids = await store.get_child_executions(parent_id)
        assert len(kids) == 20
        assert {k.status for k in kids} == {ExecutionStatus.COMPLETED}
        assert node_runs(marks, unique_prefix, parent_id)["finish"] == 1
