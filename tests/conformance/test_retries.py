"""A run's own failures (docs/architecture.md §6): retry_execution and update_failure_info."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowexec.errors import ClaimLost, ExecutionNotFound
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    OTHER_WORKER,
    SHORT_LEASE_MS,
    WORKER,
    S,
    assert_times_utc,
    assert_utc,
    claim,
    get_existing,
    live_claim_ids,
    set_status,
    start_running,
    wait_for_lease_end,
)

# ---------------------------------------------------------------- retry_execution


async def test_retry_requeues_and_counts_a_failure(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    started_at = (await get_existing(store, execution.id)).started_at
    before = await store.now()
    result = await store.retry_execution(
        execution.id,
        worker_id=WORKER,
        epoch=lease.epoch,
        reason="node crashed",
        error_node_id="node-3",
    )
    got = await get_existing(store, execution.id)
    assert result == got
    assert got.status is S.CREATED
    assert got.failure_count == 1
    assert got.last_failure_reason == "node crashed"
    assert got.last_failure_at is not None and got.last_failure_at >= before
    assert got.error_node_id == "node-3"
    assert got.started_at == started_at
    assert got.completed_at is None
    assert got.processing_worker_id is None
    assert got.available_at is not None and got.available_at >= before
    assert_times_utc(got)
    assert execution.id not in await live_claim_ids(store)
    claims = await store.claim_next(OTHER_WORKER, 60_000)
    assert [c.execution_id for c in claims] == [execution.id]
    assert claims[0].epoch == lease.epoch + 1


async def test_retry_delay_sets_available_at(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    before = await store.now()
    result = await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="backoff", delay_ms=60_000
    )
    assert result.available_at is not None
    assert result.available_at >= before + timedelta(seconds=60)
    assert result.available_at <= (await store.now()) + timedelta(seconds=61)
    assert await store.claim_next(OTHER_WORKER, 60_000, limit=10) == []


async def test_retry_without_counting_a_failure(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    result = await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="shutdown", count_failure=False
    )
    assert result.status is S.CREATED
    assert result.failure_count == 0
    assert len(await store.claim_next(OTHER_WORKER, 60_000)) == 1


async def test_retry_fails_the_execution_at_max_failures(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    first = await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="one", max_failures=2
    )
    assert first.status is S.CREATED and first.failure_count == 1
    second_lease = await claim(store, execution.id, OTHER_WORKER)
    assert await set_status(store, execution.id, S.RUNNING, second_lease)
    second = await store.retry_execution(
        execution.id,
        worker_id=OTHER_WORKER,
        epoch=second_lease.epoch,
        reason="two",
        max_failures=2,
    )
    assert second == await get_existing(store, execution.id)
    assert second.status is S.FAILED
    assert second.failure_count == 2
    assert second.completed_at is not None
    assert second.last_failure_reason == "two"
    assert execution.id not in await live_claim_ids(store)
    assert await store.claim_execution(execution.id, WORKER, 60_000) is None


async def test_retry_with_max_failures_one_fails_at_once(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    result = await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="fatal", max_failures=1
    )
    assert result.status is S.FAILED and result.failure_count == 1


@pytest.mark.parametrize("how", ["taken_over", "other_worker", "released", "stale_epoch"])
async def test_retry_by_a_non_holder_raises_claim_lost(store: ExecutionStore, how: str) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    worker, epoch = WORKER, lease.epoch
    if how == "taken_over":
        await wait_for_lease_end(store, lease)
        await claim(store, execution.id, OTHER_WORKER)
    elif how == "other_worker":
        worker = OTHER_WORKER
    elif how == "released":
        assert await store.release_execution(execution.id, WORKER)
    else:
        epoch = lease.epoch + 1
    before = await get_existing(store, execution.id)
    claim_before = await store.get_claim_for_execution(execution.id)
    with pytest.raises(ClaimLost):
        await store.retry_execution(execution.id, worker_id=worker, epoch=epoch, reason="late")
    assert await get_existing(store, execution.id) == before
    assert await store.get_claim_for_execution(execution.id) == claim_before


async def test_retry_of_unknown_execution_raises_not_found(store: ExecutionStore) -> None:
    with pytest.raises(ExecutionNotFound):
        await store.retry_execution("EX-unknown", worker_id=WORKER, epoch=1, reason="x")


# ---------------------------------------------------------------- update_failure_info


async def test_update_failure_info(store: ExecutionStore) -> None:
    execution, _ = await start_running(store)
    before = await store.now()
    assert await store.update_failure_info(execution.id, 3, "flaky network") is True
    got = await get_existing(store, execution.id)
    assert got.failure_count == 3
    assert got.last_failure_reason == "flaky network"
    assert got.last_failure_at is not None and got.last_failure_at >= before
    assert_utc(got.last_failure_at)
    assert got.status is S.RUNNING
    assert execution.id in await live_claim_ids(store)
    assert await store.update_failure_info(execution.id, 0, "reset by operator") is True
    assert (await get_existing(store, execution.id)).failure_count == 0


async def test_update_failure_info_of_unknown_execution_is_false(store: ExecutionStore) -> None:
    assert await store.update_failure_info("EX-unknown", 1, "x") is False
