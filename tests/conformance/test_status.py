"""update_execution_status: the lifecycle (docs/architecture.md §3), its timestamps, fencing and
claim release."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowexec.errors import ClaimLost, InvalidTransition
from flowexec.model import ClaimStatus, ExecutionStatus, can_transition
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    OTHER_WORKER,
    SHORT_LEASE_MS,
    TERMINAL,
    WORKER,
    S,
    assert_times_utc,
    assert_utc,
    claim,
    create_root,
    fenced,
    get_existing,
    live_claim_ids,
    make_in_status,
    set_status,
    start_running,
    wait_for_lease_end,
)


@pytest.mark.parametrize("source", list(ExecutionStatus), ids=str)
async def test_every_transition_from(store: ExecutionStore, source: ExecutionStatus) -> None:
    """Each allowed move succeeds; each illegal one raises InvalidTransition and changes nothing."""
    for target in ExecutionStatus:
        execution_id = await make_in_status(store, source)
        before = await get_existing(store, execution_id)
        if can_transition(source, target):
            assert await set_status(store, execution_id, target) is True, f"{source}->{target}"
            after = await get_existing(store, execution_id)
            assert after.status is target, f"{source}->{target}"
            assert after.updated_at >= before.updated_at
            assert_times_utc(after)
        else:
            with pytest.raises(InvalidTransition) as info:
                await set_status(store, execution_id, target)
            assert info.value.execution_id == execution_id
            assert info.value.current == source.value
            assert info.value.target == target.value
            assert await get_existing(store, execution_id) == before, f"{source}->{target}"


async def test_update_unknown_id_is_false(store: ExecutionStore) -> None:
    assert await set_status(store, "EX-unknown", S.RUNNING) is False
    assert await set_status(store, "EX-unknown", S.COMPLETED) is False


async def test_started_at_is_set_once_and_never_reset(store: ExecutionStore) -> None:
    execution = await create_root(store)
    lease = await claim(store, execution.id)
    assert (await get_existing(store, execution.id)).started_at is None  # claiming is not running

    assert await set_status(store, execution.id, S.RUNNING, lease)
    first = (await get_existing(store, execution.id)).started_at
    assert_utc(first, "started_at")
    assert first is not None
    later = first + timedelta(hours=1)

    assert await set_status(store, execution.id, S.PAUSED, lease)
    assert (await get_existing(store, execution.id)).started_at == first
    assert await set_status(store, execution.id, S.RUNNING, lease, started_at=later)
    assert (await get_existing(store, execution.id)).started_at == first

    # Requeued and run again by another worker: still the first start.
    assert await set_status(store, execution.id, S.CREATED, lease)
    assert (await get_existing(store, execution.id)).started_at == first
    second = await claim(store, execution.id, OTHER_WORKER)
    assert await set_status(store, execution.id, S.RUNNING, second, started_at=later)
    assert (await get_existing(store, execution.id)).started_at == first
    assert await set_status(store, execution.id, S.COMPLETED, second)
    assert (await get_existing(store, execution.id)).started_at == first


@pytest.mark.parametrize("terminal", TERMINAL, ids=str)
async def test_terminal_status_sets_completed_at_and_releases_claim(
    store: ExecutionStore, terminal: ExecutionStatus
) -> None:
    execution, lease = await start_running(store)
    assert await set_status(
        store,
        execution.id,
        terminal,
        lease,
        error_message="boom",
        error_node_id="node-7",
        result={"answer": 42},
    )
    got = await get_existing(store, execution.id)
    assert got.status is terminal
    assert got.completed_at is not None
    assert got.started_at is not None
    assert got.completed_at >= got.started_at
    assert_times_utc(got)
    if terminal is S.FAILED:
        assert got.error_message == "boom"
        assert got.error_node_id == "node-7"
    if terminal is S.COMPLETED:
        assert got.result == {"answer": 42}
    # The claim went with the status change, in the same transaction.
    assert got.processing_worker_id is None
    assert execution.id not in await live_claim_ids(store)
    held = await store.get_claim_for_execution(execution.id)
    assert held is None or held.status is not ClaimStatus.ACTIVE
    assert await store.release_execution(execution.id, WORKER) is False
    assert await store.extend_claim(execution.id, WORKER, 60_000) is False
    # Terminal executions are never claimed again, by anyone.
    assert await store.claim_execution(execution.id, WORKER, 60_000) is None
    assert await store.claim_execution(execution.id, OTHER_WORKER, 60_000) is None
    assert await store.claim_next(OTHER_WORKER, 60_000, limit=10) == []


@pytest.mark.parametrize("terminal", [S.STOPPED, S.FAILED], ids=str)
async def test_queued_execution_can_be_stopped_or_failed(
    store: ExecutionStore, terminal: ExecutionStatus
) -> None:
    execution = await create_root(store)
    assert await set_status(store, execution.id, terminal, error_message="cancelled")
    got = await get_existing(store, execution.id)
    assert got.status is terminal
    assert got.completed_at is not None
    assert got.started_at is None
    assert await store.claim_next(WORKER, 60_000, limit=10) == []
    assert await store.claim_execution(execution.id, WORKER, 60_000) is None


async def test_requeue_to_created_clears_run_state_and_claim(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await set_status(store, execution.id, S.CREATED, lease)
    got = await get_existing(store, execution.id)
    assert got.status is S.CREATED
    assert got.completed_at is None
    assert got.processing_worker_id is None
    assert got.processing_started_at is None
    assert got.started_at is not None
    assert got.available_at is not None
    assert execution.id not in await live_claim_ids(store)
    # Back in the queue, runnable by anyone at once, under a new epoch.
    claims = await store.claim_next(OTHER_WORKER, 60_000, limit=10)
    assert [c.execution_id for c in claims] == [execution.id]
    assert claims[0].epoch == lease.epoch + 1


async def test_unfenced_requeue_of_a_held_execution_takes_the_claim(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await set_status(store, execution.id, S.CREATED)  # an operator's command
    assert execution.id not in await live_claim_ids(store)
    with pytest.raises(ClaimLost):
        await set_status(store, execution.id, S.RUNNING, lease)
    assert (await get_existing(store, execution.id)).status is S.CREATED


async def test_fenced_update_by_the_holder_succeeds(store: ExecutionStore) -> None:
    execution = await create_root(store)
    lease = await claim(store, execution.id)
    assert await set_status(store, execution.id, S.RUNNING, lease)
    assert await set_status(store, execution.id, S.PAUSED, lease)
    assert await set_status(store, execution.id, S.RUNNING, lease)
    got = await get_existing(store, execution.id)
    assert got.status is S.RUNNING
    assert got.processing_worker_id == WORKER
    assert execution.id in await live_claim_ids(store)


@pytest.mark.parametrize(
    "how", ["taken_over", "other_worker", "released", "never_claimed", "future_epoch"]
)
async def test_fenced_update_from_a_non_holder_raises_claim_lost(
    store: ExecutionStore, how: str
) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    worker_id, epoch = lease.worker_id, lease.epoch
    if how == "taken_over":
        await wait_for_lease_end(store, lease)
        new = await claim(store, execution.id, OTHER_WORKER)
        assert new.epoch == lease.epoch + 1
        assert await set_status(store, execution.id, S.RUNNING, new)
    elif how == "other_worker":
        worker_id = OTHER_WORKER
    elif how == "released":
        assert await store.release_execution(execution.id, WORKER)
    elif how == "never_claimed":
        execution = await create_root(store)
        assert await set_status(store, execution.id, S.RUNNING)
        epoch = 1
    else:
        epoch = lease.epoch + 1
    before = await get_existing(store, execution.id)
    claim_before = await store.get_claim_for_execution(execution.id)
    for target in (S.COMPLETED, S.FAILED, S.PAUSED, S.CREATED, S.RUNNING, S.STOPPED):
        with pytest.raises(ClaimLost) as info:
            await store.update_execution_status(fenced(execution.id, target, worker_id, epoch))
        assert info.value.execution_id == execution.id
    assert await get_existing(store, execution.id) == before
    assert await store.get_claim_for_execution(execution.id) == claim_before


async def test_fenced_update_of_unknown_id_is_false(store: ExecutionStore) -> None:
    assert await store.update_execution_status(fenced("EX-unknown", S.RUNNING, WORKER, 1)) is False


async def test_illegal_fenced_transition_keeps_the_claim(store: ExecutionStore) -> None:
    execution = await create_root(store)
    lease = await claim(store, execution.id)
    before = await get_existing(store, execution.id)
    with pytest.raises(InvalidTransition):
        await set_status(store, execution.id, S.PAUSED, lease)  # created -> paused
    assert await get_existing(store, execution.id) == before
    held = await store.get_claim_for_execution(execution.id)
    assert held is not None
    assert held.status is ClaimStatus.ACTIVE and held.epoch == lease.epoch
    assert await set_status(store, execution.id, S.RUNNING, lease)


async def test_running_to_running_by_a_new_holder(store: ExecutionStore) -> None:
    execution, first = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    started_at = (await get_existing(store, execution.id)).started_at
    await wait_for_lease_end(store, first)
    second = await claim(store, execution.id, OTHER_WORKER)
    assert await set_status(store, execution.id, S.RUNNING, second)
    got = await get_existing(store, execution.id)
    assert got.status is S.RUNNING
    assert got.processing_worker_id == OTHER_WORKER
    assert got.started_at == started_at


async def test_paused_execution_keeps_its_claim_until_released(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await set_status(store, execution.id, S.PAUSED, lease)
    assert execution.id in await live_claim_ids(store)
    assert await store.claim_execution(execution.id, OTHER_WORKER, 60_000) is None
    assert await store.release_execution(execution.id, WORKER, epoch=lease.epoch)
    # Paused: not claimable even with no lease on it.
    assert await store.claim_execution(execution.id, OTHER_WORKER, 60_000) is None
    assert await store.claim_next(OTHER_WORKER, 60_000, limit=10) == []


async def test_expected_status_is_compare_and_set(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await set_status(store, execution.id, S.PAUSED, lease, expected_status=S.RUNNING)
    before = await get_existing(store, execution.id)
    # A resume that expects `running` finds it paused: refused, nothing changes.
    with pytest.raises(InvalidTransition):
        await set_status(store, execution.id, S.RUNNING, lease, expected_status=S.RUNNING)
    with pytest.raises(InvalidTransition):
        await set_status(store, execution.id, S.STOPPED, expected_status=S.CREATED)
    assert await get_existing(store, execution.id) == before
    assert await set_status(store, execution.id, S.RUNNING, lease, expected_status=S.PAUSED)
    assert (await get_existing(store, execution.id)).status is S.RUNNING


async def test_expected_status_of_unknown_execution_is_false(store: ExecutionStore) -> None:
    assert await set_status(store, "EX-unknown", S.RUNNING, expected_status=S.PAUSED) is False


async def test_refusals_say_what_was_asked_in_user_words(store: ExecutionStore) -> None:
    """Resume of a running execution and start of a stopped one name the real status and the
    request, never a status that does not exist (such as 'started')."""
    execution, _ = await start_running(store)
    with pytest.raises(InvalidTransition) as resumed:
        await set_status(store, execution.id, S.RUNNING, expected_status=S.PAUSED)
    assert str(resumed.value) == (
        f"execution {execution.id!r} is running: it cannot be resumed "
        "(only a paused execution can be)"
    )
    assert resumed.value.required is S.PAUSED
    assert await set_status(store, execution.id, S.STOPPED)
    with pytest.raises(InvalidTransition) as started:
        await store.start_execution(execution.id)
    assert str(started.value) == (
        f"execution {execution.id!r} is stopped, which is final: it cannot be started "
        "(only a created execution can be)"
    )
    assert "'started'" not in str(started.value)
