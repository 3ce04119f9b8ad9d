"""`claim_and_start`: a worker's whole exchange with the queue in one transaction
(docs/architecture.md §4, §5).

It completes the worker's returned runs (fenced by worker and epoch, from `running` only, claim
released), then claims up to `limit` runnable executions, plus one for each completion written,
exactly as `claim_next` would, and moves them to `running`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowexec.errors import ClaimLost
from flowexec.model import ClaimStatus, Completion, WorkBatch
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    LONG_LEASE_MS,
    OTHER_FLOW,
    OTHER_WORKER,
    SHORT_LEASE_MS,
    WORKER,
    S,
    assert_times_utc,
    claim,
    create_root,
    fenced,
    get_existing,
    lapsed_and_released,
    make_in_status,
    set_status,
    snapshot,
    start_running,
    wait_for_lease_end,
    wait_until_past,
)
from .starting import EMPTY, done, ids_of, no_claim, start_one

# ---------------------------------------------------------------- starting


async def test_started_executions_are_running_with_their_claim(store: ExecutionStore) -> None:
    queued = [await create_root(store) for _ in range(3)]
    before = await store.now()
    batch = await store.claim_and_start(WORKER, 45_000, limit=10)
    after = await store.now()

    assert batch.completed == frozenset()
    assert ids_of(batch) == {e.id for e in queued}
    assert len(batch.started) == 3
    for started in batch.started:
        assert_times_utc(started)
        lease, execution = started.claim, started.execution
        assert lease.execution_id == execution.id
        assert lease.worker_id == WORKER
        assert lease.status is ClaimStatus.ACTIVE
        assert lease.epoch == 1
        assert before <= lease.claimed_at <= after
        assert lease.heartbeat_at == lease.claimed_at
        assert lease.expires_at - lease.claimed_at == timedelta(milliseconds=45_000)
        assert await store.get_claim_for_execution(execution.id) == lease

        assert execution.status is S.RUNNING
        assert execution.started_at is not None and before <= execution.started_at <= after
        assert execution.processing_worker_id == WORKER
        assert execution.processing_started_at == lease.claimed_at
        assert execution.completed_at is None
        assert await store.get(execution.id) == execution
    active = sorted(await store.get_active_claims(), key=lambda c: c.execution_id)
    assert active == sorted((s.claim for s in batch.started), key=lambda c: c.execution_id)
    assert await store.claim_and_start(OTHER_WORKER, 45_000, limit=10) == EMPTY


async def test_the_returned_claim_fences_writes(store: ExecutionStore) -> None:
    """The epoch returned is the one on the execution row, so fenced writes take it."""
    started = await start_one(store)
    execution_id, epoch = started.execution.id, started.claim.epoch
    with pytest.raises(ClaimLost):
        await store.update_execution_status(fenced(execution_id, S.PAUSED, WORKER, epoch + 1))
    assert await store.update_execution_status(fenced(execution_id, S.PAUSED, WORKER, epoch))
    assert await store.extend_claim(execution_id, WORKER, LONG_LEASE_MS, epoch=epoch)
    assert (await get_existing(store, execution_id)).status is S.PAUSED


async def test_started_at_is_kept_when_a_run_starts_again(store: ExecutionStore) -> None:
    retried, retried_lease = await start_running(store)
    requeued, requeued_lease = await start_running(store)
    first_start = {
        e.id: (await get_existing(store, e.id)).started_at for e in (retried, requeued)
    }
    assert all(first_start.values())
    await store.retry_execution(
        retried.id, worker_id=WORKER, epoch=retried_lease.epoch, reason="again"
    )
    assert await set_status(store, requeued.id, S.CREATED, requeued_lease)

    batch = await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS, limit=10)
    assert ids_of(batch) == {retried.id, requeued.id}
    leases = {retried.id: retried_lease, requeued.id: requeued_lease}
    for started in batch.started:
        execution = started.execution
        assert execution.status is S.RUNNING
        assert execution.started_at == first_start[execution.id]
        assert execution.processing_worker_id == OTHER_WORKER
        assert started.claim.epoch == leases[execution.id].epoch + 1
        assert await store.get(execution.id) == execution
        assert await store.get_claim_for_execution(execution.id) == started.claim


async def test_claim_and_start_takes_queued_executions_whose_claim_lapsed(
    store: ExecutionStore,
) -> None:
    next_epochs = await lapsed_and_released(store)
    batch = await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS, limit=10)
    assert {s.execution.id: s.claim.epoch for s in batch.started} == next_epochs


# ---------------------------------------------------------------- what it takes


async def test_limit_is_respected_oldest_available_first(store: ExecutionStore) -> None:
    queued = [await create_root(store) for _ in range(5)]
    available = [(await get_existing(store, e.id)).available_at for e in queued]
    assert available == sorted(available)  # type: ignore[type-var]

    first = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=2)
    assert ids_of(first) == {e.id for e in queued[:2]}
    second = await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS, limit=2)
    assert ids_of(second) == {e.id for e in queued[2:4]}
    third = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=2)
    assert ids_of(third) == {queued[4].id}
    assert await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=2) == EMPTY
    for execution in queued:
        assert (await get_existing(store, execution.id)).status is S.RUNNING


async def test_oldest_available_at_beats_oldest_created(store: ExecutionStore) -> None:
    first, lease = await start_running(store)
    second = await create_root(store)
    await store.retry_execution(
        first.id, worker_id=WORKER, epoch=lease.epoch, reason="again", count_failure=False
    )
    assert ids_of(await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS)) == {second.id}
    assert ids_of(await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS)) == {first.id}


async def test_flow_filter(store: ExecutionStore) -> None:
    a = await create_root(store)
    b = await create_root(store, flow_id=OTHER_FLOW)
    c = await create_root(store, flow_id="flow-c")
    got = await store.claim_and_start(
        WORKER, LONG_LEASE_MS, limit=10, flow_ids=[OTHER_FLOW, "flow-none"]
    )
    assert ids_of(got) == {b.id}
    got = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=10, flow_ids=("flow-c",))
    assert ids_of(got) == {c.id}
    got = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=10, flow_ids=None)
    assert ids_of(got) == {a.id}


async def test_empty_flow_ids_claims_nothing_but_still_completes(store: ExecutionStore) -> None:
    running = await start_one(store)
    queued = await create_root(store)
    batch = await store.claim_and_start(
        WORKER, LONG_LEASE_MS, limit=5, flow_ids=[], complete=[done(running, "ok")]
    )
    assert batch == WorkBatch(started=[], completed=frozenset({running.execution.id}))
    finished = await get_existing(store, running.execution.id)
    assert finished.status is S.COMPLETED and finished.result == "ok"
    assert (await get_existing(store, queued.id)).status is S.CREATED
    assert await no_claim(store, queued.id)


async def test_what_is_not_runnable_is_not_taken(store: ExecutionStore) -> None:
    not_started = await create_root(store, start=False)
    held = await create_root(store)
    await claim(store, held.id)  # queued, but under a live lease
    running, _ = await start_running(store)
    paused_id = await make_in_status(store, S.PAUSED)
    stopped_id = await make_in_status(store, S.STOPPED)
    finished = [await make_in_status(store, s) for s in (S.COMPLETED, S.FAILED)]
    backing_off, lease = await start_running(store)
    await store.retry_execution(
        backing_off.id, worker_id=WORKER, epoch=lease.epoch, reason="later", delay_ms=60_000
    )
    runnable = await create_root(store)
    untouched = [
        not_started.id, held.id, running.id, paused_id, stopped_id, *finished, backing_off.id
    ]
    before = await snapshot(store, untouched)

    batch = await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS, limit=100)
    assert ids_of(batch) == {runnable.id}
    after = await snapshot(store, untouched)
    assert after.executions == before.executions
    assert after.claims == before.claims


async def test_a_paused_execution_is_not_taken_even_without_a_claim(
    store: ExecutionStore,
) -> None:
    """Pausing the run of a worker that then lost its lease leaves it paused, not queued."""
    started = await start_one(store, timeout_ms=SHORT_LEASE_MS)
    assert await set_status(store, started.execution.id, S.PAUSED, started.claim)
    await wait_for_lease_end(store, started.claim)
    assert await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS, limit=10) == EMPTY
    assert (await get_existing(store, started.execution.id)).status is S.PAUSED


async def test_a_retry_delay_is_waited_out(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    retried = await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="later", delay_ms=150
    )
    assert retried.available_at is not None
    assert await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS) == EMPTY
    await wait_until_past(store, retried.available_at)
    assert ids_of(await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS)) == {execution.id}


# ---------------------------------------------------------------- completing


async def test_completions_are_written_and_release_the_claim(store: ExecutionStore) -> None:
    results: list[Any] = [{"rows": [1, 2], "ok": True}, [1, "two"], "text", 7, None]
    runs = [await start_one(store) for _ in results]
    # One of them ran before and failed a node: completing it clears that error.
    marked, lease = await start_running(store)
    assert await set_status(
        store, marked.id, S.CREATED, lease, error_message="boom", error_node_id="node-1"
    )
    again = await store.claim_and_start(WORKER, LONG_LEASE_MS, flow_ids=[marked.flow_id])
    assert ids_of(again) == {marked.id}
    assert again.started[0].execution.error_message == "boom"
    runs.append(again.started[0])
    results.append({"recovered": True})

    before = await store.now()
    batch = await store.claim_and_start(
        WORKER,
        LONG_LEASE_MS,
        limit=0,
        complete=[done(r, result) for r, result in zip(runs, results, strict=True)],
    )
    after = await store.now()

    assert batch.started == []
    assert batch.completed == frozenset(r.execution.id for r in runs)
    for run, result in zip(runs, results, strict=True):
        got = await get_existing(store, run.execution.id)
        assert got.status is S.COMPLETED
        assert got.result == result
        assert got.completed_at is not None and before <= got.completed_at <= after
        assert got.started_at == run.execution.started_at
        assert got.processing_worker_id is None
        assert got.processing_started_at is None
        assert got.error_message is None and got.error_node_id is None
        held = await store.get_claim_for_execution(run.execution.id)
        assert held is not None
        assert held.status is ClaimStatus.RELEASED
        assert held.epoch == run.claim.epoch
        assert held.worker_id == WORKER
    assert await store.get_active_claims() == []
    # Completed is terminal: nothing claims it again.
    assert await store.claim_and_start(OTHER_WORKER, LONG_LEASE_MS, limit=100) == EMPTY


async def test_completions_that_cannot_be_written_change_nothing(store: ExecutionStore) -> None:
    # The holder lost its lease and another worker took the run over.
    taken_over = await start_one(store, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, taken_over.claim)
    takeover = await claim(store, taken_over.execution.id, OTHER_WORKER)
    assert takeover.epoch == taken_over.claim.epoch + 1
    # The same worker claimed it again: the old epoch is stale.
    reclaimed = await start_one(store)
    assert (await claim(store, reclaimed.execution.id)).epoch == reclaimed.claim.epoch + 1
    # Another worker's run, under the epoch that worker holds.
    others = await start_one(store, OTHER_WORKER)
    # Paused by its own holder; stopped by an operator; already completed.
    paused = await start_one(store)
    assert await set_status(store, paused.execution.id, S.PAUSED, paused.claim)
    stopped = await start_one(store)
    assert await set_status(store, stopped.execution.id, S.STOPPED)
    completed = await start_one(store)
    assert await set_status(store, completed.execution.id, S.COMPLETED, completed.claim,
                            result="first")
    refused = [
        done(taken_over, "stale"),
        done(reclaimed, "stale"),
        Completion(others.execution.id, others.claim.epoch, "not mine"),
        done(paused, "paused"),
        done(stopped, "stopped"),
        done(completed, "twice"),
        Completion("EX-unknown", 1, "gone"),
    ]
    ids = [c.execution_id for c in refused]
    before = await snapshot(store, ids)

    batch = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=0, complete=refused)
    assert batch == EMPTY
    assert await snapshot(store, ids) == before
    for completion in refused:  # one at a time too, with room to claim
        batch = await store.claim_and_start(WORKER, LONG_LEASE_MS, complete=[completion])
        assert batch == EMPTY
    assert await snapshot(store, ids) == before
    assert (await get_existing(store, completed.execution.id)).result == "first"


async def test_a_refused_completion_does_not_stop_the_others(store: ExecutionStore) -> None:
    good = await start_one(store)
    paused = await start_one(store)
    assert await set_status(store, paused.execution.id, S.PAUSED, paused.claim)
    batch = await store.claim_and_start(
        WORKER,
        LONG_LEASE_MS,
        limit=0,
        complete=[done(paused, "no"), Completion("EX-unknown", 3), done(good, "yes")],
    )
    assert batch == WorkBatch(started=[], completed=frozenset({good.execution.id}))
    assert (await get_existing(store, good.execution.id)).status is S.COMPLETED
    got = await get_existing(store, paused.execution.id)
    assert got.status is S.PAUSED and got.result is None


