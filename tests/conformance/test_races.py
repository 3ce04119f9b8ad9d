"""Races on a real database: many stores (each with its own connections) at once."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from flowexec.errors import ClaimLost
from flowexec.model import ExecutionClaim
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    SHORT_LEASE_MS,
    S,
    StoreFactory,
    build_root,
    create_root,
    get_existing,
    set_status,
    start_running,
    wait_for_lease_end,
)

LONG = 120_000


async def open_stores(store_factory: StoreFactory, n: int) -> list[ExecutionStore]:
    return list(await asyncio.gather(*(store_factory() for _ in range(n))))


async def create_many(store: ExecutionStore, n: int, batch: int = 50) -> list[str]:
    roots = [build_root() for _ in range(n)]
    for i in range(0, n, batch):
        await asyncio.gather(*(store.create(r) for r in roots[i : i + batch]))
    return [r.id for r in roots]


async def test_sixteen_claimers_one_winner(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    stores = await open_stores(store_factory, 16)
    for _round in range(5):
        execution = await create_root(store)
        results = await asyncio.gather(
            *(s.claim_execution(execution.id, f"worker-{i}", LONG) for i, s in enumerate(stores))
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, winners
        held = await store.get_claim_for_execution(execution.id)
        assert held == winners[0]
        assert winners[0].epoch == 1
        got = await get_existing(store, execution.id)
        assert got.processing_worker_id == winners[0].worker_id


async def test_sixteen_claimers_one_winner_on_takeover(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    stores = await open_stores(store_factory, 16)
    executions = [await start_running(store, timeout_ms=SHORT_LEASE_MS) for _ in range(3)]
    for _, lease in executions:
        await wait_for_lease_end(store, lease)
    for execution, lease in executions:
        results = await asyncio.gather(
            *(s.claim_execution(execution.id, f"worker-{i}", LONG) for i, s in enumerate(stores))
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, winners
        assert winners[0].epoch == lease.epoch + 1
        assert await store.get_claim_for_execution(execution.id) == winners[0]


async def test_eight_stores_drain_two_thousand_executions(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    ids = await create_many(store, 2000)
    stores = await open_stores(store_factory, 8)

    async def drain(s: ExecutionStore, worker: str) -> list[ExecutionClaim]:
        taken: list[ExecutionClaim] = []
        empty = 0
        while empty < 3:
            batch = await s.claim_next(worker, LONG, limit=10)
            assert len(batch) <= 10
            if batch:
                empty = 0
                taken += batch
            else:
                empty += 1
                await asyncio.sleep(0.01)
        return taken

    results = await asyncio.gather(*(drain(s, f"worker-{i}") for i, s in enumerate(stores)))
    claimed = Counter(c.execution_id for taken in results for c in taken)
    assert sum(claimed.values()) == 2000
    assert set(claimed) == set(ids)
    assert max(claimed.values()) == 1
    assert all(c.epoch == 1 for taken in results for c in taken)
    assert sum(1 for taken in results if taken) >= 2, "one store did all the work"
    assert len(await store.get_active_claims()) == 2000
    assert await store.claim_next("late-worker", LONG, limit=100) == []


async def test_claim_next_and_claim_execution_never_double_claim(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    ids = await create_many(store, 300)
    stores = await open_stores(store_factory, 8)
    rng = random.Random(1234)

    async def by_queue(s: ExecutionStore, worker: str) -> list[ExecutionClaim]:
        taken: list[ExecutionClaim] = []
        while batch := await s.claim_next(worker, LONG, limit=7):
            taken += batch
        return taken

    async def by_id(s: ExecutionStore, worker: str) -> list[ExecutionClaim]:
        order = ids[:]
        rng.shuffle(order)
        taken = []
        for execution_id in order:
            c = await s.claim_execution(execution_id, worker, LONG)
            if c is not None:
                taken.append(c)
        return taken

    results = await asyncio.gather(
        *((by_queue if i % 2 else by_id)(s, f"worker-{i}") for i, s in enumerate(stores))
    )
    claimed = Counter(c.execution_id for taken in results for c in taken)
    assert set(claimed) == set(ids)
    assert max(claimed.values()) == 1


async def test_concurrent_retries_lose_no_failure_increments(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    """Eight workers claim, run and retry 40 executions three times each, then complete them."""
    ids = await create_many(store, 40)
    stores = await open_stores(store_factory, 8)
    retries: Counter[str] = Counter()
    target = 3

    async def work(s: ExecutionStore, worker: str) -> None:
        idle = 0
        while idle < 20:
            batch = await s.claim_next(worker, LONG, limit=3)
            if not batch:
                idle += 1
                await asyncio.sleep(0.02)
                continue
            idle = 0
            for c in batch:
                assert await set_status(s, c.execution_id, S.RUNNING, c)
                if retries[c.execution_id] < target:
                    retries[c.execution_id] += 1
                    await s.retry_execution(
                        c.execution_id, worker_id=worker, epoch=c.epoch, reason=f"try {c.epoch}"
                    )
                else:
                    assert await set_status(s, c.execution_id, S.COMPLETED, c)

    await asyncio.gather(*(work(s, f"worker-{i}") for i, s in enumerate(stores)))
    for execution_id in ids:
        got = await get_existing(store, execution_id)
        assert got.status is S.COMPLETED
        assert got.failure_count == target
        held = await store.get_claim_for_execution(execution_id)
        assert held is not None and held.epoch == target + 1


async def test_concurrent_recovery_sweeps_never_double_count(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    running = [await start_running(store, timeout_ms=SHORT_LEASE_MS) for _ in range(60)]
    await wait_for_lease_end(
        store, max((lease for _, lease in running), key=lambda c: c.expires_at)
    )
    stores = await open_stores(store_factory, 6)

    async def sweep(s: ExecutionStore, worker: str) -> list[str]:
        recovered: list[str] = []
        while records := await s.recover_executions(worker, limit=7, backoff_base_ms=60_000):
            recovered += [r.execution_id for r in records]
        return recovered

    results = await asyncio.gather(*(sweep(s, f"recoverer-{i}") for i, s in enumerate(stores)))
    recovered = Counter(i for r in results for i in r)
    assert set(recovered) == {e.id for e, _ in running}
    assert max(recovered.values()) == 1
    for execution, _ in running:
        got = await get_existing(store, execution.id)
        assert got.failure_count == 1 and got.status is S.CREATED
        assert len(await store.get_recovery_history(execution.id)) == 1


async def test_stale_finish_and_takeover_never_both_win(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    """After a lease lapses, the old holder finishing and a new worker claiming race: one wins."""
    old_store, new_store = await open_stores(store_factory, 2)
    running = [await start_running(store, timeout_ms=SHORT_LEASE_MS) for _ in range(12)]
    for _, lease in running:
        await wait_for_lease_end(store, lease)

    async def finish(lease: ExecutionClaim) -> bool:
        try:
            return await set_status(old_store, lease.execution_id, S.COMPLETED, lease)
        except ClaimLost:
            return False

    outcomes = await asyncio.gather(
        *(
            asyncio.gather(finish(lease), new_store.claim_execution(e.id, "new-worker", LONG))
            for e, lease in running
        )
    )
    for (execution, _), (finished, taken) in zip(running, outcomes, strict=True):
        assert finished != (taken is not None), (execution.id, finished, taken)
        got = await get_existing(store, execution.id)
        assert got.status is (S.COMPLETED if finished else S.RUNNING)


async def test_concurrent_identical_creates(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    stores = await open_stores(store_factory, 8)
    execution = build_root()
    await asyncio.gather(*(s.create(execution) for s in stores))
    got = await get_existing(store, execution.id)
    assert got.content_differences(execution) == []
    assert len(await store.claim_next("worker", LONG, limit=10)) == 1


async def test_concurrent_claims_across_many_executions(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    ids = await create_many(store, 50)
    stores = await open_stores(store_factory, 4)
    results = await asyncio.gather(
        *(s.claim_execution(i, f"worker-{n}", LONG) for i in ids for n, s in enumerate(stores))
    )
    winners = Counter(r.execution_id for r in results if r is not None)
    assert set(winners) == set(ids)
    assert max(winners.values()) == 1
