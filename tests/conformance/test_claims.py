"""Claims, leases and fencing epochs (docs/architecture.md §4): claim, release, extend, expire,
list."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowexec.model import ClaimStatus
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    OTHER_WORKER,
    SHORT_LEASE_MS,
    WORKER,
    S,
    assert_times_utc,
    claim,
    create_root,
    get_existing,
    live_claim_ids,
    set_status,
    start_running,
    wait_for_lease_end,
)


async def test_claim_returns_a_live_lease_on_the_database_clock(store: ExecutionStore) -> None:
    execution = await create_root(store)
    before = await store.now()
    lease = await store.claim_execution(execution.id, WORKER, 30_000)
    after = await store.now()
    assert lease is not None
    assert lease.execution_id == execution.id
    assert lease.worker_id == WORKER
    assert lease.status is ClaimStatus.ACTIVE
    assert lease.epoch == 1
    assert_times_utc(lease)
    assert before <= lease.claimed_at <= after
    assert lease.claimed_at <= lease.heartbeat_at <= after
    assert abs(lease.expires_at - lease.claimed_at - timedelta(milliseconds=30_000)) < timedelta(
        seconds=1
    )
    assert await store.get_claim_for_execution(execution.id) == lease


async def test_claim_sets_processing_fields_but_not_status(store: ExecutionStore) -> None:
    execution = await create_root(store)
    before = await store.now()
    await claim(store, execution.id)
    got = await get_existing(store, execution.id)
    assert got.status is S.CREATED
    assert got.processing_worker_id == WORKER
    assert got.processing_started_at is not None
    assert got.processing_started_at >= before
    assert got.started_at is None


async def test_claim_of_unknown_execution_is_none(store: ExecutionStore) -> None:
    assert await store.claim_execution("EX-unknown", WORKER, 60_000) is None
    assert await store.get_claim_for_execution("EX-unknown") is None


async def test_live_lease_of_another_worker_blocks_a_claim(store: ExecutionStore) -> None:
    execution = await create_root(store)
    lease = await claim(store, execution.id)
    assert await store.claim_execution(execution.id, OTHER_WORKER, 60_000) is None
    assert await store.get_claim_for_execution(execution.id) == lease
    assert (await get_existing(store, execution.id)).processing_worker_id == WORKER


async def test_the_holder_can_claim_again_under_a_new_epoch(store: ExecutionStore) -> None:
    execution = await create_root(store)
    first = await claim(store, execution.id)
    second = await claim(store, execution.id)
    assert second.worker_id == WORKER
    assert second.epoch == first.epoch + 1
    assert await store.extend_claim(execution.id, WORKER, 60_000, epoch=first.epoch) is False
    assert await store.extend_claim(execution.id, WORKER, 60_000, epoch=second.epoch) is True


async def test_epoch_increases_by_one_on_every_claim(store: ExecutionStore) -> None:
    execution = await create_root(store)
    epochs = []
    for i in range(5):
        worker = f"worker-{i}"
        lease = await claim(store, execution.id, worker)
        epochs.append(lease.epoch)
        held = await store.get_claim_for_execution(execution.id)
        assert held is not None and held.epoch == lease.epoch and held.worker_id == worker
        assert await store.release_execution(execution.id, worker)
    assert epochs == [1, 2, 3, 4, 5]


async def test_running_execution_without_a_live_lease_is_claimable(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await store.release_execution(execution.id, WORKER)
    taken = await claim(store, execution.id, OTHER_WORKER)
    assert taken.epoch == lease.epoch + 1
    got = await get_existing(store, execution.id)
    assert got.status is S.RUNNING and got.processing_worker_id == OTHER_WORKER


async def test_expired_lease_is_claimable_by_another_worker(store: ExecutionStore) -> None:
    execution = await create_root(store)
    lease = await claim(store, execution.id, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, lease)
    # The claim row still says `active`: the store must look at expires_at (database clock).
    taken = await claim(store, execution.id, OTHER_WORKER)
    assert taken.epoch == lease.epoch + 1
    assert (await get_existing(store, execution.id)).processing_worker_id == OTHER_WORKER


async def test_expired_lease_is_claimable_after_expire_old_claims(store: ExecutionStore) -> None:
    execution = await create_root(store)
    lease = await claim(store, execution.id, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, lease)
    assert await store.expire_old_claims() == 1
    expired = await store.get_claim_for_execution(execution.id)
    assert expired is not None and expired.status is ClaimStatus.EXPIRED
    taken = await claim(store, execution.id, OTHER_WORKER)
    assert taken.epoch == lease.epoch + 1 and taken.status is ClaimStatus.ACTIVE


async def test_release_makes_the_execution_claimable_at_once(store: ExecutionStore) -> None:
    execution = await create_root(store)
    lease = await claim(store, execution.id)
    assert await store.release_execution(execution.id, WORKER) is True
    released = await store.get_claim_for_execution(execution.id)
    assert released is not None
    assert released.status is ClaimStatus.RELEASED
    assert released.epoch == lease.epoch
    got = await get_existing(store, execution.id)
    assert got.processing_worker_id is None
    assert got.status is S.CREATED
    assert execution.id not in await live_claim_ids(store)
    claims = await store.claim_next(OTHER_WORKER, 60_000)
    assert [c.execution_id for c in claims] == [execution.id]
    assert claims[0].epoch == lease.epoch + 1


async def test_release_does_not_change_status(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await store.release_execution(execution.id, WORKER, epoch=lease.epoch)
    assert (await get_existing(store, execution.id)).status is S.RUNNING


@pytest.mark.parametrize("how", ["other_worker", "stale_epoch", "twice", "never_claimed"])
async def test_release_by_a_non_holder_is_false_and_changes_nothing(
    store: ExecutionStore, how: str
) -> None:
    execution = await create_root(store)
    worker, epoch = WORKER, None
    if how == "never_claimed":
        assert await store.release_execution(execution.id, WORKER) is False
        assert await store.get_claim_for_execution(execution.id) is None
        return
    lease = await claim(store, execution.id)
    if how == "other_worker":
        worker = OTHER_WORKER
    elif how == "stale_epoch":
        epoch = lease.epoch + 1
    else:
        assert await store.release_execution(execution.id, WORKER)
        lease = await store.get_claim_for_execution(execution.id)  # type: ignore[assignment]
    before = await get_existing(store, execution.id)
    assert await store.release_execution(execution.id, worker, epoch=epoch) is False
    assert await store.get_claim_for_execution(execution.id) == lease
    assert await get_existing(store, execution.id) == before


async def test_release_unknown_execution_is_false(store: ExecutionStore) -> None:
    assert await store.release_execution("EX-unknown", WORKER) is False


async def test_extend_claim_by_the_holder(store: ExecutionStore) -> None:
    execution = await create_root(store)
    lease = await claim(store, execution.id, timeout_ms=1_000)
    assert await store.extend_claim(execution.id, WORKER, 120_000) is True
    held = await store.get_claim_for_execution(execution.id)
    assert held is not None
    assert held.epoch == lease.epoch
    assert held.status is ClaimStatus.ACTIVE
    assert held.expires_at > lease.expires_at + timedelta(seconds=60)
    assert held.heartbeat_at >= lease.heartbeat_at
    assert held.claimed_at == lease.claimed_at
    assert_times_utc(held)
    assert await store.extend_claim(execution.id, WORKER, 60_000, epoch=lease.epoch) is True


@pytest.mark.parametrize(
    "how", ["other_worker", "stale_epoch", "released", "expired", "taken_over", "never_claimed"]
)
async def test_extend_claim_by_a_non_holder_is_false(store: ExecutionStore, how: str) -> None:
    execution = await create_root(store)
    if how == "never_claimed":
        assert await store.extend_claim(execution.id, WORKER, 60_000) is False
        assert await store.get_claim_for_execution(execution.id) is None
        return
    lease = await claim(store, execution.id, timeout_ms=SHORT_LEASE_MS)
    worker, epoch = WORKER, None
    if how == "other_worker":
        worker = OTHER_WORKER
    elif how == "stale_epoch":
        epoch = lease.epoch + 1
    elif how == "released":
        assert await store.release_execution(execution.id, WORKER)
    elif how == "expired":
        await wait_for_lease_end(store, lease)
    else:
        await wait_for_lease_end(store, lease)
        await claim(store, execution.id, OTHER_WORKER)
    before = await store.get_claim_for_execution(execution.id)
    assert await store.extend_claim(execution.id, worker, 60_000, epoch=epoch) is False
    assert await store.get_claim_for_execution(execution.id) == before


async def test_extend_claims_in_a_batch(store: ExecutionStore) -> None:
    held = [await create_root(store) for _ in range(3)]
    leases = [await claim(store, e.id, timeout_ms=10_000) for e in held]
    wrong_epoch = await create_root(store)
    wrong_epoch_lease = await claim(store, wrong_epoch.id, timeout_ms=10_000)
    released = await create_root(store)
    released_lease = await claim(store, released.id)
    assert await store.release_execution(released.id, WORKER)
    theirs = await create_root(store)
    their_lease = await claim(store, theirs.id, OTHER_WORKER)

    result = await store.extend_claims(
        WORKER,
        [(lease.execution_id, lease.epoch) for lease in leases]
        + [
            (wrong_epoch.id, wrong_epoch_lease.epoch + 1),
            (released.id, released_lease.epoch),
            (theirs.id, their_lease.epoch),
            ("EX-unknown", 1),
        ],
        90_000,
    )
    assert result == {e.id for e in held}
    for lease in leases:
        extended = await store.get_claim_for_execution(lease.execution_id)
        assert extended is not None
        assert extended.expires_at > lease.expires_at + timedelta(seconds=60)
    assert await store.get_claim_for_execution(wrong_epoch.id) == wrong_epoch_lease
    assert await store.get_claim_for_execution(theirs.id) == their_lease
    assert await store.extend_claims(WORKER, [], 90_000) == set()


async def test_expire_old_claims_counts_only_expired_active_leases(store: ExecutionStore) -> None:
    short = [await create_root(store) for _ in range(2)]
    long = await create_root(store)
    released = await create_root(store)
    short_leases = [await claim(store, e.id, timeout_ms=SHORT_LEASE_MS) for e in short]
    await claim(store, long.id)
    await claim(store, released.id, timeout_ms=SHORT_LEASE_MS)
    assert await store.release_execution(released.id, WORKER)
    for lease in short_leases:
        await wait_for_lease_end(store, lease)

    assert await store.expire_old_claims() == 2
    assert await store.expire_old_claims() == 0
    for e in short:
        got = await store.get_claim_for_execution(e.id)
        assert got is not None and got.status is ClaimStatus.EXPIRED
    long_claim = await store.get_claim_for_execution(long.id)
    assert long_claim is not None and long_claim.status is ClaimStatus.ACTIVE
    released_claim = await store.get_claim_for_execution(released.id)
    assert released_claim is not None and released_claim.status is ClaimStatus.RELEASED


async def test_get_active_claims_lists_live_leases_only(store: ExecutionStore) -> None:
    live = await create_root(store)
    theirs = await create_root(store)
    lapsed = await create_root(store)
    released = await create_root(store)
    live_lease = await claim(store, live.id)
    their_lease = await claim(store, theirs.id, OTHER_WORKER)
    lapsed_lease = await claim(store, lapsed.id, timeout_ms=SHORT_LEASE_MS)
    await claim(store, released.id)
    assert await store.release_execution(released.id, WORKER)
    await wait_for_lease_end(store, lapsed_lease)

    active = await store.get_active_claims()
    assert sorted(active, key=lambda c: c.execution_id) == sorted(
        [live_lease, their_lease], key=lambda c: c.execution_id
    )
    for c in active:
        assert_times_utc(c)
    assert await store.get_active_claims(worker_id=WORKER) == [live_lease]
    assert await store.get_active_claims(worker_id=OTHER_WORKER) == [their_lease]
    assert await store.get_active_claims(worker_id="nobody") == []


async def test_claim_after_requeue_keeps_counting_epochs(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await set_status(store, execution.id, S.CREATED, lease)
    again = await claim(store, execution.id, OTHER_WORKER)
    assert again.epoch == lease.epoch + 1
