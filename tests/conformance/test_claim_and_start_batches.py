"""`claim_and_start` in batches (docs/architecture.md §4, §5): the slots completions free, bad
input refused whole, and workers racing through one queue."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from flowexec.model import ClaimStatus, Completion, StartedExecution
from flowexec.store.limits import MAX_BATCH
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    FLOW,
    LONG_LEASE_MS,
    WORKER,
    S,
    StoreFactory,
    World,
    build_world,
    create_root,
    get_existing,
)
from .rejections import BAD_IDS, BAD_TIMEOUTS, LONG_ID, Call, check_rejected, each
from .starting import EMPTY, done, ids_of, no_claim, start_one
from .test_races import LONG, create_many, open_stores

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
