"""RecoveryService: leader election through the store's lock; sweeps that report what they did."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from flowexec.errors import ValidationError
from flowexec.model import (
    ExecutionStatus,
    RecoveryReason,
    UpdateExecutionStatusParams,
    new_execution,
)
from flowexec.runtime.recovery import RecoveryService
from flowexec.store.protocol import ExecutionStore
from tests.conformance.helpers import start_running, wait_for_lease_end

StoreFactory = Callable[..., Awaitable[ExecutionStore]]

LEASE_MS = 100


async def test_only_the_lock_holder_sweeps(store_factory: StoreFactory) -> None:
    first_store = await store_factory()
    second_store = await store_factory()
    first = RecoveryService(first_store, worker_id="rec-1", interval_s=0.05)
    second = RecoveryService(second_store, worker_id="rec-2", interval_s=0.05)

    assert await first.sweep_once() is not None
    assert first.is_leader
    assert await second.sweep_once() is None
    assert not second.is_leader

    await first_store.release_recovery_lock(first.lock_id)
    assert await second.sweep_once() is not None
    assert second.is_leader


async def test_sweep_requeues_dead_runs_and_leaves_the_queue_alone(store: ExecutionStore) -> None:
    dead_execution, dead_claim = await start_running(
        store, worker_id="dead-worker", timeout_ms=LEASE_MS
    )
    dead = dead_execution.id
    queued = new_execution("flow", "owner")
    await store.create(queued)
    await wait_for_lease_end(store, dead_claim)

    service = RecoveryService(store, worker_id="rec", interval_s=0.05, backoff_base_ms=0)
    report = await service.sweep_once()

    assert report is not None
    assert (report.requeued, report.failed) == (1, 0)
    assert report.expired == 1
    recovered = await store.get(dead)
    assert recovered is not None
    assert recovered.status is ExecutionStatus.CREATED
    assert recovered.failure_count == 1
    history = await store.get_recovery_history(dead)
    assert [(r.recovery_reason, r.previous_worker_id, r.recovered_by_worker) for r in history] == [
        (RecoveryReason.EXPIRED_CLAIM, "dead-worker", "rec")
    ]
    untouched = await store.get(queued.id)
    assert untouched is not None
    assert (untouched.status, untouched.failure_count) == (ExecutionStatus.CREATED, 0)
    assert await store.get_recovery_history(queued.id) == []


async def test_sweep_fails_a_run_at_exactly_max_failures(store: ExecutionStore) -> None:
    service = RecoveryService(store, worker_id="rec", interval_s=0.05, max_failures=2,
                              backoff_base_ms=0)
    execution, first_claim = await start_running(store, worker_id="w-a", timeout_ms=LEASE_MS)
    execution_id = execution.id
    await wait_for_lease_end(store, first_claim)
    first = await service.sweep_once()
    assert first is not None and (first.requeued, first.failed) == (1, 0)

    claim = await store.claim_execution(execution_id, "w-b", LEASE_MS)
    assert claim is not None
    await store.update_execution_status(
        UpdateExecutionStatusParams(
            execution_id, ExecutionStatus.RUNNING, worker_id="w-b", epoch=claim.epoch
        )
    )
    await wait_for_lease_end(store, claim)
    second = await service.sweep_once()
    assert second is not None and (second.requeued, second.failed) == (0, 1)

    final = await store.get(execution_id)
    assert final is not None
    assert final.status is ExecutionStatus.FAILED
    assert final.failure_count == 2
    assert final.error_message is not None and "2 failures" in final.error_message
    reasons = [r.recovery_reason for r in await store.get_recovery_history(execution_id)]
    assert reasons == [RecoveryReason.EXPIRED_CLAIM, RecoveryReason.MAX_FAILURES_EXCEEDED]


async def test_run_loop_stops_and_releases_the_lock(store_factory: StoreFactory) -> None:
    store = await store_factory()
    other = await store_factory()
    service = RecoveryService(store, worker_id="rec", interval_s=0.05)
    task = asyncio.create_task(service.run())
    for _ in range(100):
        if service.is_leader:
            break
        await asyncio.sleep(0.01)
    assert service.is_leader
    assert not await other.try_acquire_recovery_lock(service.lock_id)
    service.stop()
    await asyncio.wait_for(task, 5)
    assert await other.try_acquire_recovery_lock(service.lock_id)


async def test_bad_settings_are_refused(store: ExecutionStore) -> None:
    with pytest.raises(ValidationError, match="interval_s"):
        RecoveryService(store, worker_id="rec", interval_s=0)
    with pytest.raises(ValidationError, match="max_failures"):
        RecoveryService(store, worker_id="rec", max_failures=0)
    with pytest.raises(ValidationError, match="worker_id"):
        RecoveryService(store, worker_id="")
