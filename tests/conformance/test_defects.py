"""One test per defect of the TypeScript PostgresExecutionStore (docs/architecture.md §9); each
one fails on that store's behaviour."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from flowexec.errors import ClaimLost, ExecutionExists, InvalidTransition
from flowexec.model import ClaimStatus, RecoveryReason
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    OTHER_WORKER,
    RECOVERER,
    SHORT_LEASE_MS,
    WORKER,
    S,
    assert_times_utc,
    build_root,
    claim,
    create_child,
    create_root,
    get_existing,
    live_claim_ids,
    make_in_status,
    set_status,
    start_running,
    wait_for_lease_end,
    wait_until_past,
)


async def test_defect_released_claim_blocks_later_claims(store: ExecutionStore) -> None:
    execution = await create_root(store)
    for i in range(3):
        lease = await claim(store, execution.id, f"worker-{i}")
        assert lease.epoch == i + 1
        assert await store.release_execution(execution.id, f"worker-{i}")
    assert len(await store.claim_next(WORKER, 60_000)) == 1


@pytest.mark.parametrize("marked_expired", [False, True])
async def test_defect_expired_claim_blocks_later_claims(
    store: ExecutionStore, marked_expired: bool
) -> None:
    execution = await create_root(store)
    lease = await claim(store, execution.id, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, lease)
    if marked_expired:
        assert await store.expire_old_claims() == 1
    assert await store.claim_execution(execution.id, OTHER_WORKER, 60_000) is not None


async def test_defect_recovery_lock_result_misread(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    # The TypeScript store read the lock result wrongly, so no instance ever believed it held
    # the lock.
    assert await store.try_acquire_recovery_lock(1) is True
    assert await other_store.try_acquire_recovery_lock(1) is False
    assert await store.release_recovery_lock(1) is True


async def test_defect_recovery_lock_released_on_another_pooled_connection(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    assert await store.try_acquire_recovery_lock(2)
    # Keep every pooled connection busy so a careless release runs on a different one.
    await asyncio.gather(*(store.get_stats() for _ in range(30)))
    assert await store.release_recovery_lock(2) is True
    assert await other_store.try_acquire_recovery_lock(2) is True
    assert await other_store.release_recovery_lock(2) is True


async def test_defect_running_with_expired_claim_never_recovered(store: ExecutionStore) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, lease)
    # The TypeScript store expired claims first, after which its "expired claim" branch found
    # nothing.
    assert await store.expire_old_claims() == 1
    assert [e.id for e in await store.get_executions_needing_recovery()] == [execution.id]
    records = await store.recover_executions(RECOVERER)
    assert [(r.execution_id, r.recovery_reason) for r in records] == [
        (execution.id, RecoveryReason.EXPIRED_CLAIM)
    ]
    assert (await get_existing(store, execution.id)).status is S.CREATED


async def test_defect_running_with_released_claim_never_recovered(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await store.release_execution(execution.id, WORKER, epoch=lease.epoch)
    assert [e.id for e in await store.get_executions_needing_recovery()] == [execution.id]
    records = await store.recover_executions(RECOVERER)
    assert [(r.execution_id, r.recovery_reason) for r in records] == [
        (execution.id, RecoveryReason.RELEASED_WHILE_RUNNING)
    ]
    got = await get_existing(store, execution.id)
    assert got.status is S.CREATED and got.failure_count == 1


async def test_defect_failed_run_stays_running(store: ExecutionStore) -> None:
    """The TypeScript store released before its fenced failure write, which then failed: still
    running."""
    execution, lease = await start_running(store)
    assert await set_status(
        store, execution.id, S.FAILED, lease, error_message="node blew up", error_node_id="n1"
    )
    got = await get_existing(store, execution.id)
    assert got.status is S.FAILED
    assert got.error_message == "node blew up"
    assert execution.id not in await live_claim_ids(store)  # released by the same call
    assert await store.get_executions_needing_recovery() == []


async def test_defect_recovery_duplicates_fresh_executions(store: ExecutionStore) -> None:
    fresh = [await create_root(store) for _ in range(4)]
    await create_child(store, fresh[0])
    retried, lease = await start_running(store)
    await store.retry_execution(
        retried.id, worker_id=WORKER, epoch=lease.epoch, reason="transient", delay_ms=60_000
    )
    counts = (await store.get_stats()).counts_by_status
    for _ in range(3):
        assert await store.get_executions_needing_recovery() == []
        assert await store.recover_executions(RECOVERER) == []
    assert (await store.get_stats()).counts_by_status == counts
    for e in fresh:
        got = await get_existing(store, e.id)
        assert got.failure_count == 0 and await store.get_recovery_history(e.id) == []
    assert (await get_existing(store, retried.id)).failure_count == 1


async def test_defect_status_writes_without_transition_guard(store: ExecutionStore) -> None:
    for terminal, target in [
        (S.COMPLETED, S.RUNNING),
        (S.FAILED, S.COMPLETED),
        (S.STOPPED, S.CREATED),
    ]:
        execution_id = await make_in_status(store, terminal)
        before = await get_existing(store, execution_id)
        with pytest.raises(InvalidTransition):
            await set_status(store, execution_id, target)
        assert await get_existing(store, execution_id) == before
    queued = await create_root(store)
    with pytest.raises(InvalidTransition):
        await set_status(store, queued.id, S.COMPLETED)  # created -> completed skips running


async def test_defect_stale_worker_overwrites_new_owner(store: ExecutionStore) -> None:
    execution, old = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, old)
    new = await claim(store, execution.id, OTHER_WORKER)
    assert await set_status(store, execution.id, S.RUNNING, new)
    before = await get_existing(store, execution.id)
    with pytest.raises(ClaimLost):
        await set_status(store, execution.id, S.COMPLETED, old, result={"stale": True})
    with pytest.raises(ClaimLost):
        await store.retry_execution(execution.id, worker_id=WORKER, epoch=old.epoch, reason="x")
    assert await get_existing(store, execution.id) == before
    assert await set_status(store, execution.id, S.COMPLETED, new, result={"fresh": True})
    assert (await get_existing(store, execution.id)).result == {"fresh": True}


async def test_defect_heartbeat_loss_goes_unnoticed(store: ExecutionStore) -> None:
    execution, old = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, old)
    assert await store.extend_claim(execution.id, WORKER, 60_000) is False  # lapsed
    await claim(store, execution.id, OTHER_WORKER)
    assert await store.extend_claim(execution.id, WORKER, 60_000, epoch=old.epoch) is False
    assert await store.extend_claims(WORKER, [(execution.id, old.epoch)], 60_000) == set()
    held = await store.get_claim_for_execution(execution.id)
    assert held is not None and held.worker_id == OTHER_WORKER


@pytest.mark.parametrize("status", [S.PAUSED, S.STOPPED])
async def test_defect_paused_and_stopped_are_claimable(store: ExecutionStore, status: S) -> None:
    execution_id = await make_in_status(store, status)
    assert await store.claim_execution(execution_id, WORKER, 60_000) is None
    assert await store.claim_next(WORKER, 60_000, limit=10) == []
    assert await store.get_claim_for_execution(execution_id) is None


async def test_defect_started_at_reset_on_resume(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    started_at = (await get_existing(store, execution.id)).started_at
    assert await set_status(store, execution.id, S.PAUSED, lease)
    resumed_at = await store.now()
    await wait_until_past(store, resumed_at)
    assert await set_status(store, execution.id, S.RUNNING, lease, started_at=resumed_at)
    assert (await get_existing(store, execution.id)).started_at == started_at


async def test_defect_failure_count_written_from_stale_read(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    # The worker read failure_count 0 when it claimed; an operator changed it since.
    assert await store.update_failure_info(execution.id, 3, "operator")
    result = await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="crash"
    )
    assert result.failure_count == 4
    second = await claim(store, execution.id, OTHER_WORKER, SHORT_LEASE_MS)
    assert await set_status(store, execution.id, S.RUNNING, second)
    assert await store.update_failure_info(execution.id, 7, "operator again")
    await wait_for_lease_end(store, second)
    await store.recover_executions(RECOVERER, max_failures=100)
    assert (await get_existing(store, execution.id)).failure_count == 8


async def test_defect_nothing_is_ever_deleted(store: ExecutionStore) -> None:
    old_id = await make_in_status(store, S.COMPLETED)
    cutoff = await store.now()
    await wait_until_past(store, cutoff)
    assert await store.purge_finished(cutoff) == 1
    assert await store.get(old_id) is None


async def test_defect_worker_clock_and_naive_timestamps(store: ExecutionStore) -> None:
    execution = await create_root(store)
    before = await store.now()
    lease = await claim(store, execution.id, timeout_ms=SHORT_LEASE_MS)
    after = await store.now()
    assert_times_utc(lease)
    assert before <= lease.claimed_at <= after  # stamped by the database clock
    assert_times_utc(await get_existing(store, execution.id))
    # Liveness is judged on the database clock too.
    await wait_until_past(store, lease.expires_at)
    assert execution.id not in await live_claim_ids(store)


async def test_defect_root_pagination_on_non_unique_timestamp(store: ExecutionStore) -> None:
    same = datetime(2024, 3, 1, tzinfo=UTC)
    roots = [build_root(created_at=same) for _ in range(7)]
    roots.append(build_root(created_at=same - timedelta(seconds=1)))
    for root in roots:
        await store.create(root)
    seen: list[str] = []
    page = await store.get_root_executions(roots[0].flow_id, 3)
    while page:
        seen += [r.execution.id for r in page]
        page = await store.get_root_executions(roots[0].flow_id, 3, page[-1])
    expected = sorted(roots, key=lambda e: (e.created_at, e.id), reverse=True)
    assert seen == [e.id for e in expected]


async def test_defect_tree_query_unbounded(store: ExecutionStore) -> None:
    root = await create_root(store)
    for _ in range(20):
        await create_child(store, root)
    nodes = await store.get_execution_tree(root.id, max_nodes=5)
    assert len(nodes) == 5
    assert nodes[0].id == root.id


async def test_defect_create_overwrites_existing_execution(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    before = await get_existing(store, execution.id)
    with pytest.raises(ExecutionExists):
        await store.create(dataclasses.replace(execution, owner_id="intruder"))
    await store.create(execution)  # identical: a no-op, not a reset
    assert await get_existing(store, execution.id) == before
    held = await store.get_claim_for_execution(execution.id)
    assert held is not None and held.status is ClaimStatus.ACTIVE and held.epoch == lease.epoch
