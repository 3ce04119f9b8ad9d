"""`claim_and_start`: a worker's whole exchange with the queue in one transaction
(docs/architecture.md §4, §5).

It completes the worker's returned runs (fenced by worker and epoch, from `running` only, claim
released), then claims up to `limit` runnable executions, plus one for each completion written,
exactly as `claim_next` would, and moves them to `running`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from flowexec.errors import ClaimLost
from flowexec.model import ClaimStatus, Completion, StartedExecution, WorkBatch
from flowexec.store.limits import MAX_BATCH
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    FLOW,
    LONG_LEASE_MS,
    OTHER_FLOW,
    OTHER_WORKER,
    SHORT_LEASE_MS,
    WORKER,
    S,
    StoreFactory,
    World,
    assert_times_utc,
    build_world,
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
from .test_races import LONG, create_many, open_stores
from .test_validation import BAD_IDS, BAD_TIMEOUTS, LONG_ID, Call, check_rejected, each

EMPTY = WorkBatch(started=[], completed=frozenset())

_solo_flows = itertools.count()


def ids_of(batch: WorkBatch) -> set[str]:
    return {s.execution.id for s in batch.started}


def done(started: StartedExecution, result: Any = None) -> Completion:
    """The completion a worker sends back for a run it was started on."""
    return Completion(started.execution.id, started.claim.epoch, result)


async def start_one(
    store: ExecutionStore,
    worker_id: str = WORKER,
    timeout_ms: int = LONG_LEASE_MS,
    **create_kwargs: Any,
) -> StartedExecution:
    """A new root (in a flow of its own) started by `worker_id` through `claim_and_start`."""
    create_kwargs.setdefault("flow_id", f"solo-{next(_solo_flows)}")
    execution = await create_root(store, **create_kwargs)
    batch = await store.claim_and_start(
        worker_id, timeout_ms, flow_ids=[execution.flow_id]
    )
    assert ids_of(batch) == {execution.id}
    return batch.started[0]


async def no_claim(store: ExecutionStore, execution_id: str) -> bool:
    return await store.get_claim_for_execution(execution_id) is None


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


# ---------------------------------------------------------------- slots


async def test_limit_zero_claims_one_for_each_completion_written(store: ExecutionStore) -> None:
    runs = [await start_one(store) for _ in range(2)]
    queued = [await create_root(store) for _ in range(3)]
    batch = await store.claim_and_start(
        WORKER, LONG_LEASE_MS, limit=0, complete=[done(r) for r in runs]
    )
    assert batch.completed == frozenset(r.execution.id for r in runs)
    assert ids_of(batch) == {e.id for e in queued[:2]}
    assert await no_claim(store, queued[2].id)


async def test_refused_completions_free_no_slots(store: ExecutionStore) -> None:
    runs = [await start_one(store) for _ in range(2)]
    queued = [await create_root(store) for _ in range(2)]
    stale = [Completion(r.execution.id, r.claim.epoch + 1) for r in runs]
    batch = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=0, complete=stale)
    assert batch == EMPTY
    for execution in queued:
        assert await no_claim(store, execution.id)
        assert (await get_existing(store, execution.id)).status is S.CREATED
    for run in runs:
        assert (await get_existing(store, run.execution.id)).status is S.RUNNING


async def test_only_written_completions_free_slots(store: ExecutionStore) -> None:
    written = await start_one(store)
    refused = await start_one(store)
    queued = [await create_root(store) for _ in range(3)]
    batch = await store.claim_and_start(
        WORKER,
        LONG_LEASE_MS,
        limit=0,
        complete=[done(written), Completion(refused.execution.id, refused.claim.epoch + 1)],
    )
    assert batch.completed == frozenset({written.execution.id})
    assert ids_of(batch) == {queued[0].id}


async def test_limit_one_and_one_written_claims_two(store: ExecutionStore) -> None:
    run = await start_one(store)
    queued = [await create_root(store) for _ in range(4)]
    batch = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=1, complete=[done(run)])
    assert batch.completed == frozenset({run.execution.id})
    assert ids_of(batch) == {e.id for e in queued[:2]}


async def test_limit_zero_without_completions_is_an_empty_batch(store: ExecutionStore) -> None:
    queued = await create_root(store)
    assert await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=0) == EMPTY
    assert await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=0, complete=[]) == EMPTY
    assert await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=3, flow_ids=[]) == EMPTY
    assert await no_claim(store, queued.id)
    assert (await get_existing(store, queued.id)).status is S.CREATED


# ---------------------------------------------------------------- bad input


def _with_good_completion(**kwargs: Any) -> Call:
    """A call that would complete the world's running root and claim its queued execution,
    were it not for the bad argument in `kwargs`."""

    async def call(store: ExecutionStore, world: World) -> None:
        args: dict[str, Any] = {
            "worker_id": WORKER,
            "timeout_ms": LONG_LEASE_MS,
            "limit": 10,
            "complete": [Completion(world.root.id, world.lease.epoch, {"ok": True})],
            **kwargs,
        }
        await store.claim_and_start(args.pop("worker_id"), args.pop("timeout_ms"), **args)

    return call


def _bad_completion(make: Callable[[World], object]) -> Call:
    async def call(store: ExecutionStore, world: World) -> None:
        good = Completion(world.root.id, world.lease.epoch, {"ok": True})
        complete: list[Any] = [good, make(world)]
        await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=10, complete=complete)

    return call


def _completions(make: Callable[[World], list[Completion]]) -> Call:
    async def call(store: ExecutionStore, world: World) -> None:
        await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=10, complete=make(world))

    return call


async def test_bad_input_is_rejected_and_changes_nothing(store: ExecutionStore) -> None:
    world = await build_world(store)
    cases: list[tuple[str, Call]] = [
        *each("limit", [-1, MAX_BATCH + 1, 2.5, "1", True, None],
              lambda v: _with_good_completion(limit=v)),
        *each("worker_id", BAD_IDS, lambda v: _with_good_completion(worker_id=v)),
        *each("timeout_ms", BAD_TIMEOUTS, lambda v: _with_good_completion(timeout_ms=v)),
        *each("flow_ids", [FLOW, b"flow", 5, [""], [LONG_ID], [1]],
              lambda v: _with_good_completion(flow_ids=v)),
        *each("complete", ["EX-1", b"EX-1", None, 5, {"x": 1}],
              lambda v: _with_good_completion(complete=v)),
        *each(
            "not a Completion",
            [{"execution_id": "EX-1", "epoch": 1}, ("EX-1", 1), "EX-1", None, 1],
            lambda v: _bad_completion(lambda w: v),
        ),
        *each(
            "result",
            [object(), {1, 2}, float("nan"), {"t": (1, 2)}, {1: "one"}, b"raw"],
            lambda v: _bad_completion(lambda w: Completion(w.child.id, 1, v)),
        ),
        *each(
            "epoch",
            [0, -1, True, False, None, "1", 1.5, 1 << 63],
            lambda v: _bad_completion(lambda w: Completion(w.child.id, v)),  # type: ignore[arg-type]
        ),
        *each(
            "execution_id",
            BAD_IDS,
            lambda v: _bad_completion(lambda w: Completion(v, 1)),  # type: ignore[arg-type]
        ),
        (
            "the same execution twice",
            _bad_completion(lambda w: Completion(w.root.id, w.lease.epoch, {"ok": True})),
        ),
        (
            "the same execution twice, other epoch",
            _bad_completion(lambda w: Completion(w.root.id, w.lease.epoch + 1)),
        ),
        (
            "too many completions",
            _completions(
                lambda w: [Completion(w.root.id, w.lease.epoch)]
                + [Completion(f"EX-{n}", 1) for n in range(MAX_BATCH)]
            ),
        ),
    ]
    await check_rejected(store, world, cases)
    # Nothing was completed nor claimed: the valid part of each call was not applied.
    root = await get_existing(store, world.root.id)
    assert root.status is S.RUNNING and root.result is None
    assert await no_claim(store, world.queued.id) and await no_claim(store, world.child.id)
    assert await store.get_claim_for_execution(world.root.id) == world.lease


# ---------------------------------------------------------------- races


async def test_workers_drain_the_queue_completing_as_they_go(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    """Six stores run every execution once: each call completes the previous batch and claims
    the next one. Nothing is started twice and everything ends completed by its runner."""
    ids = await create_many(store, 300)
    stores = await open_stores(store_factory, 6)

    async def work(s: ExecutionStore, worker: str) -> tuple[list[StartedExecution], list[str]]:
        started: list[StartedExecution] = []
        completed: list[str] = []
        pending: list[Completion] = []
        idle = 0
        while idle < 3:
            batch = await s.claim_and_start(worker, LONG, limit=5, complete=pending)
            assert batch.completed == frozenset(c.execution_id for c in pending)
            assert len(batch.started) <= 5 + len(batch.completed)
            assert all(x.claim.worker_id == worker for x in batch.started)
            completed += batch.completed
            started += batch.started
            pending = [done(x, {"by": worker}) for x in batch.started]
            if batch.started:
                idle = 0
            else:
                idle += 1
                await asyncio.sleep(0.01)
        return started, completed

    results = await asyncio.gather(*(work(s, f"worker-{i}") for i, s in enumerate(stores)))
    starts = Counter(x.execution.id for started, _ in results for x in started)
    completions = Counter(i for _, completed in results for i in completed)
    assert set(starts) == set(ids) and max(starts.values()) == 1
    assert set(completions) == set(ids) and max(completions.values()) == 1
    assert all(x.claim.epoch == 1 for started, _ in results for x in started)
    runner = {x.execution.id: x.claim.worker_id for started, _ in results for x in started}
    for execution_id in ids:
        got = await get_existing(store, execution_id)
        assert got.status is S.COMPLETED
        assert got.result == {"by": runner[execution_id]}
        held = await store.get_claim_for_execution(execution_id)
        assert held is not None
        assert held.status is ClaimStatus.RELEASED and held.epoch == 1
        assert held.worker_id == runner[execution_id]
    assert await store.get_active_claims() == []
    assert await store.claim_and_start("late-worker", LONG, limit=100) == EMPTY
