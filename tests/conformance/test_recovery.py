"""Recovery (docs/architecture.md §6): the recovery query and sweep, history, the recovery lock.
Retries are in test_retries.py, retention and stats in test_retention.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import pytest

from flowexec.errors import ClaimLost, ExecutionNotFound
from flowexec.model import ClaimStatus, Execution, RecoveryReason
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    OTHER_WORKER,
    RECOVERER,
    SHORT_LEASE_MS,
    WORKER,
    S,
    StoreFactory,
    assert_times_utc,
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

# ---------------------------------------------------------------- the recovery query and sweep


@dataclass
class Scene:
    expired: Execution
    released: Execution
    missing_id: str
    paused_dead: Execution
    live: Execution
    live_paused: Execution
    queued: Execution
    queued_lapsed: Execution
    not_started: Execution
    finished_ids: list[str]

    @property
    def dead(self) -> set[str]:
        return {self.expired.id, self.released.id, self.missing_id, self.paused_dead.id}

    @property
    def untouchable(self) -> list[str]:
        return [
            self.live.id,
            self.live_paused.id,
            self.queued.id,
            self.queued_lapsed.id,
            self.not_started.id,
            *self.finished_ids,
        ]


async def build_scene(store: ExecutionStore) -> Scene:
    """Every kind of execution recovery must act on, next to every kind it must leave alone."""
    expired, expired_lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    released, released_lease = await start_running(store)
    assert await store.release_execution(released.id, WORKER, epoch=released_lease.epoch)
    missing_id = await make_in_status(store, S.RUNNING)  # running, never claimed
    paused_dead, paused_lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    assert await set_status(store, paused_dead.id, S.PAUSED, paused_lease)
    live, _ = await start_running(store)
    live_paused, live_paused_lease = await start_running(store)
    assert await set_status(store, live_paused.id, S.PAUSED, live_paused_lease)
    queued = await create_root(store)
    queued_lapsed = await create_root(store)
    lapsed_lease = await claim(store, queued_lapsed.id, OTHER_WORKER, SHORT_LEASE_MS)
    not_started = await create_root(store, start=False)
    finished_ids = [await make_in_status(store, s) for s in (S.COMPLETED, S.FAILED, S.STOPPED)]
    for lease in (expired_lease, paused_lease, lapsed_lease):
        await wait_for_lease_end(store, lease)
    return Scene(
        expired=expired,
        released=released,
        missing_id=missing_id,
        paused_dead=paused_dead,
        live=live,
        live_paused=live_paused,
        queued=queued,
        queued_lapsed=queued_lapsed,
        not_started=not_started,
        finished_ids=finished_ids,
    )


async def test_executions_needing_recovery(store: ExecutionStore) -> None:
    scene = await build_scene(store)
    found = await store.get_executions_needing_recovery()
    assert {e.id for e in found} == scene.dead
    for e in found:
        assert e == await get_existing(store, e.id)
    assert len(await store.get_executions_needing_recovery(limit=2)) == 2
    # After the claims are marked expired, the same executions still need recovery.
    assert await store.expire_old_claims() == 3
    assert {e.id for e in await store.get_executions_needing_recovery(100)} == scene.dead


async def test_recover_requeues_what_died_and_nothing_else(store: ExecutionStore) -> None:
    scene = await build_scene(store)
    untouched = {i: await get_existing(store, i) for i in scene.untouchable}
    before = await store.now()
    records = await store.recover_executions(RECOVERER, backoff_base_ms=60_000)
    after = await store.now()

    by_id = {r.execution_id: r for r in records}
    assert len(records) == len(by_id) == 4
    assert set(by_id) == scene.dead
    assert by_id[scene.expired.id].recovery_reason == RecoveryReason.EXPIRED_CLAIM
    assert by_id[scene.released.id].recovery_reason == RecoveryReason.RELEASED_WHILE_RUNNING
    assert by_id[scene.missing_id].recovery_reason == RecoveryReason.MISSING_CLAIM
    assert by_id[scene.paused_dead.id].recovery_reason == RecoveryReason.EXPIRED_CLAIM
    assert by_id[scene.expired.id].previous_worker_id == WORKER
    assert by_id[scene.paused_dead.id].previous_worker_id == WORKER
    for execution_id, record in by_id.items():
        assert record.recovered_by_worker == RECOVERER
        expected_previous = "paused" if execution_id == scene.paused_dead.id else "running"
        assert record.previous_status == expected_previous
        assert before <= record.recovered_at <= after
        assert_times_utc(record)
        assert await store.get_recovery_history(execution_id) == [record]
        got = await get_existing(store, execution_id)
        assert got.status is S.CREATED
        assert got.failure_count == 1
        assert got.last_failure_reason is not None
        assert got.processing_worker_id is None
        assert got.started_at is not None
        assert got.available_at is not None and got.available_at > before  # backoff
    for execution_id, execution in untouched.items():
        got = await get_existing(store, execution_id)
        assert got.status is execution.status and got.failure_count == 0
        assert got.started_at == execution.started_at
        assert await store.get_recovery_history(execution_id) == []
    assert {scene.live.id, scene.live_paused.id} <= await live_claim_ids(store)
    # Backoff keeps the recovered ones out of the queue for now.
    claimed = {c.execution_id for c in await store.claim_next(OTHER_WORKER, 60_000, limit=100)}
    assert claimed == {scene.queued.id, scene.queued_lapsed.id}
    # A second sweep finds nothing more to do.
    assert await store.recover_executions(RECOVERER, backoff_base_ms=60_000) == []


async def test_recovered_execution_returns_to_the_queue_after_backoff(
    store: ExecutionStore,
) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, lease)
    records = await store.recover_executions(RECOVERER, backoff_base_ms=50, backoff_max_ms=100)
    assert [r.execution_id for r in records] == [execution.id]
    got = await get_existing(store, execution.id)
    assert got.available_at is not None
    await wait_until_past(store, got.available_at)
    claims = await store.claim_next(OTHER_WORKER, 60_000)
    assert [c.execution_id for c in claims] == [execution.id]
    assert claims[0].epoch == lease.epoch + 1


async def test_recover_backoff_is_capped(store: ExecutionStore) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    assert await store.update_failure_info(execution.id, 3, "earlier crashes")
    await wait_for_lease_end(store, lease)
    records = await store.recover_executions(
        RECOVERER, backoff_base_ms=60_000, backoff_max_ms=2_000
    )
    assert [r.execution_id for r in records] == [execution.id]
    got = await get_existing(store, execution.id)
    assert got.status is S.CREATED and got.available_at is not None
    assert got.available_at <= records[0].recovered_at + timedelta(milliseconds=2_000)


async def test_recover_respects_limit(store: ExecutionStore) -> None:
    leases = [(await start_running(store, timeout_ms=SHORT_LEASE_MS))[1] for _ in range(5)]
    for lease in leases:
        await wait_for_lease_end(store, lease)
    first = await store.recover_executions(RECOVERER, limit=2)
    assert len(first) == 2
    rest = await store.recover_executions(RECOVERER, limit=10)
    assert len(rest) == 3
    assert {r.execution_id for r in first + rest} == {lease.execution_id for lease in leases}


async def test_recover_fails_the_execution_at_max_failures(store: ExecutionStore) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    assert await store.update_failure_info(execution.id, 4, "earlier crash")
    await wait_for_lease_end(store, lease)
    records = await store.recover_executions(RECOVERER, max_failures=5)
    assert [r.execution_id for r in records] == [execution.id]
    assert records[0].recovery_reason == RecoveryReason.MAX_FAILURES_EXCEEDED
    got = await get_existing(store, execution.id)
    assert got.status is S.FAILED
    assert got.failure_count == 5
    assert got.error_message
    assert got.completed_at is not None
    assert await store.get_recovery_history(execution.id) == records
    assert await store.claim_execution(execution.id, OTHER_WORKER, 60_000) is None
    assert await store.recover_executions(RECOVERER) == []


async def test_recover_counts_failures_until_the_maximum(store: ExecutionStore) -> None:
    execution = await create_root(store)
    for attempt in range(1, 4):
        lease = await claim(store, execution.id, f"worker-{attempt}", SHORT_LEASE_MS)
        assert await set_status(store, execution.id, S.RUNNING, lease)
        await wait_for_lease_end(store, lease)
        records = await store.recover_executions(RECOVERER, max_failures=3, backoff_base_ms=1)
        assert [r.execution_id for r in records] == [execution.id]
        got = await get_existing(store, execution.id)
        assert got.failure_count == attempt
        if attempt < 3:
            assert got.status is S.CREATED
            assert got.available_at is not None
            await wait_until_past(store, got.available_at)
        else:
            assert got.status is S.FAILED
    history = await store.get_recovery_history(execution.id)
    assert len(history) == 3
    assert sorted(history, key=lambda r: r.id)[-1].recovery_reason == (
        RecoveryReason.MAX_FAILURES_EXCEEDED
    )


async def test_recovery_leaves_the_queue_alone(store: ExecutionStore) -> None:
    queued = [await create_root(store) for _ in range(3)]
    child = await create_child(store, queued[0])
    retried, lease = await start_running(store)
    await store.retry_execution(
        retried.id, worker_id=WORKER, epoch=lease.epoch, reason="flaky", delay_ms=60_000
    )
    ids = [e.id for e in queued] + [child.id, retried.id]
    before = {i: await get_existing(store, i) for i in ids}
    stats_before = await store.get_stats()

    assert await store.get_executions_needing_recovery() == []
    assert await store.recover_executions(RECOVERER) == []
    assert {i: await get_existing(store, i) for i in ids} == before
    assert (await store.get_stats()).counts_by_status == stats_before.counts_by_status


async def test_concurrent_sweeps_do_not_double_count(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    leases = [(await start_running(store, timeout_ms=SHORT_LEASE_MS))[1] for _ in range(6)]
    for lease in leases:
        await wait_for_lease_end(store, lease)
    a, b = await asyncio.gather(
        store.recover_executions(RECOVERER), other_store.recover_executions("recoverer-2")
    )
    recovered = [r.execution_id for r in a + b]
    assert sorted(recovered) == sorted(lease.execution_id for lease in leases)
    for lease in leases:
        assert (await get_existing(store, lease.execution_id)).failure_count == 1
        assert len(await store.get_recovery_history(lease.execution_id)) == 1


# ---------------------------------------------------------------- history


async def test_record_recovery_and_history(store: ExecutionStore) -> None:
    execution = await create_root(store)
    before = await store.now()
    first = await store.record_recovery(execution.id, "w-a", "manual", "running", "w-old")
    second = await store.record_recovery(execution.id, "w-b", "operator_reset")
    after = await store.now()
    assert isinstance(first.id, int) and isinstance(second.id, int)
    assert first.id != second.id
    assert first.execution_id == execution.id
    assert first.recovered_by_worker == "w-a"
    assert first.recovery_reason == "manual"
    assert first.previous_status == "running"
    assert first.previous_worker_id == "w-old"
    assert second.previous_status is None and second.previous_worker_id is None
    for record in (first, second):
        assert_times_utc(record)
        assert before <= record.recovered_at <= after
    history = await store.get_recovery_history(execution.id)
    assert sorted(history, key=lambda r: r.id) == sorted([first, second], key=lambda r: r.id)
    # Recording history is not an action: the execution itself is unchanged.
    assert (await get_existing(store, execution.id)).status is S.CREATED


async def test_record_recovery_for_unknown_execution_raises(store: ExecutionStore) -> None:
    with pytest.raises(ExecutionNotFound):
        await store.record_recovery("EX-unknown", "w", "manual")
    assert await store.get_recovery_history("EX-unknown") == []


# ---------------------------------------------------------------- the recovery lock


async def test_recovery_lock_is_exclusive_between_stores(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    assert await store.try_acquire_recovery_lock(42) is True
    assert await other_store.try_acquire_recovery_lock(42) is False
    assert await other_store.try_acquire_recovery_lock(43) is True  # another lock id
    assert await other_store.release_recovery_lock(42) is False  # not the holder
    assert await other_store.try_acquire_recovery_lock(42) is False
    assert await store.release_recovery_lock(42) is True
    assert await other_store.try_acquire_recovery_lock(42) is True
    assert await store.try_acquire_recovery_lock(42) is False
    assert await other_store.release_recovery_lock(42) is True
    assert await other_store.release_recovery_lock(43) is True


async def test_release_of_a_lock_not_held_is_false(store: ExecutionStore) -> None:
    assert await store.release_recovery_lock(7) is False
    assert await store.try_acquire_recovery_lock(7) is True
    assert await store.release_recovery_lock(7) is True
    assert await store.release_recovery_lock(7) is False


async def test_recovery_lock_holds_while_the_store_is_busy(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    assert await store.try_acquire_recovery_lock(11)
    await asyncio.gather(*(create_root(store) for _ in range(20)))
    await asyncio.gather(*(store.get_stats() for _ in range(20)))
    assert await other_store.try_acquire_recovery_lock(11) is False
    assert await store.release_recovery_lock(11) is True
    assert await other_store.try_acquire_recovery_lock(11) is True
    assert await other_store.release_recovery_lock(11) is True


async def test_recovery_lock_is_namespaced_by_table_prefix(
    store: ExecutionStore, store_factory: StoreFactory, unique_prefix: str
) -> None:
    elsewhere = await store_factory(table_prefix=f"{unique_prefix}ns_")
    same = await store_factory()
    assert await store.try_acquire_recovery_lock(5) is True
    assert await elsewhere.try_acquire_recovery_lock(5) is True
    assert await same.try_acquire_recovery_lock(5) is False
    assert await elsewhere.release_recovery_lock(5) is True
    assert await same.try_acquire_recovery_lock(5) is False
    assert await store.release_recovery_lock(5) is True


async def test_closing_the_holder_frees_the_lock(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    holder = await store_factory()
    assert await holder.try_acquire_recovery_lock(9) is True
    assert await store.try_acquire_recovery_lock(9) is False
    await holder.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not await store.try_acquire_recovery_lock(9):
        assert loop.time() < deadline, "the lock of a closed store was never freed"
        await asyncio.sleep(0.05)
    assert await store.release_recovery_lock(9) is True


async def test_claim_status_after_recovery(store: ExecutionStore) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, lease)
    await store.recover_executions(RECOVERER, backoff_base_ms=60_000)
    held = await store.get_claim_for_execution(execution.id)
    assert held is None or held.status is not ClaimStatus.ACTIVE
    assert await store.extend_claim(execution.id, WORKER, 60_000) is False
    with pytest.raises(ClaimLost):
        await set_status(store, execution.id, S.COMPLETED, lease)
