"""A worker's registry entry: registered at start, refreshed by its heartbeat, removed when it
stops; registered again after the sweep removed it; dead entries removed by recovery."""

from __future__ import annotations

import os

from flowexec import App, FlowContext
from flowexec.model.workers import WorkerRegistration
from flowexec.runtime.recovery import RecoveryService
from flowexec.store.protocol import ExecutionStore
from flowexec.version import __version__
from tests.conformance.helpers import wait_until_past
from tests.runtime.helpers import running_worker, wait_until

app = App()


@app.flow("registry.flow-b")
async def flow_b(ctx: FlowContext) -> None:
    """Registered, never run."""


@app.flow("registry.flow-a")
async def flow_a(ctx: FlowContext) -> None:
    """Registered, never run."""


async def test_a_worker_registers_refreshes_and_leaves(store: ExecutionStore) -> None:
    async with running_worker(app, store, worker_id="reg-1", concurrency=3):
        await wait_until(lambda: _registered(store, "reg-1"), what="registration")
        [first] = await store.get_workers()
        assert (first.flow_ids, first.concurrency, first.pid, first.version) == (
            ("registry.flow-a", "registry.flow-b"), 3, os.getpid(), __version__
        )
        assert first.live and first.host

        async def refreshed() -> bool:
            [now] = await store.get_workers()
            return now.last_seen_at > first.last_seen_at and now.started_at == first.started_at

        await wait_until(refreshed, what="a heartbeat to refresh the entry")
    assert await store.get_workers() == []
    known = {f.flow_id: f.live_workers for f in await store.get_known_flows()}
    assert known == {"registry.flow-a": 0, "registry.flow-b": 0}


async def test_a_worker_dropped_from_the_registry_registers_again(store: ExecutionStore) -> None:
    async with running_worker(app, store, worker_id="reg-2"):
        await wait_until(lambda: _registered(store, "reg-2"), what="registration")
        assert await store.remove_worker("reg-2")  # as the sweep does after a long stall
        await wait_until(lambda: _registered(store, "reg-2"), what="registration again")


async def test_the_recovery_sweep_removes_dead_workers(store: ExecutionStore) -> None:
    dead = await store.register_worker(
        WorkerRegistration("dead", "host", 1, ("registry.flow-a",), 1, __version__), ttl_ms=50
    )
    await store.register_worker(
        WorkerRegistration("alive", "host", 2, ("registry.flow-a",), 1, __version__),
        ttl_ms=60_000,
    )
    await wait_until_past(store, dead.expires_at)
    report = await RecoveryService(store, worker_id="sweeper").sweep_once()
    assert report is not None and report.dead_workers == 1
    assert [w.worker_id for w in await store.get_workers()] == ["alive"]


async def _registered(store: ExecutionStore, worker_id: str) -> bool:
    return worker_id in {w.worker_id for w in await store.get_workers()}
