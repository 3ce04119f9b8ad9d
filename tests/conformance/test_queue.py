"""The store is the queue (docs/architecture.md §5): claim_next, start_execution, wait_for_work."""

from __future__ import annotations

import asyncio

from flowexec.model import ClaimStatus
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    OTHER_FLOW,
    OTHER_WORKER,
    WORKER,
    S,
    assert_times_utc,
    claim,
    create_child,
    create_root,
    get_existing,
    lapsed_and_released,
    make_in_status,
    set_status,
    start_running,
    wait_until_past,
)


async def test_claim_next_on_an_empty_queue(store: ExecutionStore) -> None:
    assert await store.claim_next(WORKER, 60_000) == []
    assert await store.claim_next(WORKER, 60_000, limit=100) == []


async def test_claim_next_takes_the_oldest_available_first(store: ExecutionStore) -> None:
    queued = [await create_root(store) for _ in range(5)]
    available = [(await get_existing(store, e.id)).available_at for e in queued]
    assert available == sorted(available)  # type: ignore[type-var]

    first = await store.claim_next(WORKER, 60_000, limit=2)
    assert sorted(c.execution_id for c in first) == sorted(e.id for e in queued[:2])
    second = await store.claim_next(OTHER_WORKER, 60_000, limit=2)
    assert sorted(c.execution_id for c in second) == sorted(e.id for e in queued[2:4])
    third = await store.claim_next(WORKER, 60_000, limit=2)
    assert [c.execution_id for c in third] == [queued[4].id]
    assert await store.claim_next(WORKER, 60_000, limit=2) == []


async def test_claim_next_returns_live_claims_without_changing_status(
    store: ExecutionStore,
) -> None:
    queued = [await create_root(store) for _ in range(3)]
    before = await store.now()
    claims = await store.claim_next(WORKER, 45_000, limit=10)
    after = await store.now()
    assert sorted(c.execution_id for c in claims) == sorted(e.id for e in queued)
    for c in claims:
        assert c.worker_id == WORKER
        assert c.status is ClaimStatus.ACTIVE
        assert c.epoch == 1
        assert before <= c.claimed_at <= after
        assert c.expires_at > c.claimed_at
        assert_times_utc(c)
        assert await store.get_claim_for_execution(c.execution_id) == c
        got = await get_existing(store, c.execution_id)
        assert got.status is S.CREATED
        assert got.processing_worker_id == WORKER
    active = sorted(await store.get_active_claims(), key=lambda c: c.execution_id)
    assert active == sorted(claims, key=lambda c: c.execution_id)


async def test_claim_next_respects_limit(store: ExecutionStore) -> None:
    for _ in range(7):
        await create_root(store)
    assert len(await store.claim_next(WORKER, 60_000, limit=3)) == 3
    assert len(await store.claim_next(WORKER, 60_000, limit=1)) == 1
    assert len(await store.claim_next(WORKER, 60_000, limit=10)) == 3


async def test_claim_next_filters_by_flow(store: ExecutionStore) -> None:
    a = await create_root(store)
    b = await create_root(store, flow_id=OTHER_FLOW)
    c = await create_root(store, flow_id="flow-c")
    got = await store.claim_next(WORKER, 60_000, limit=10, flow_ids=[OTHER_FLOW, "flow-none"])
    assert [x.execution_id for x in got] == [b.id]
    got = await store.claim_next(WORKER, 60_000, limit=10, flow_ids=("flow-c",))
    assert [x.execution_id for x in got] == [c.id]
    got = await store.claim_next(WORKER, 60_000, limit=10, flow_ids=None)
    assert [x.execution_id for x in got] == [a.id]


async def test_claim_next_takes_children_too(store: ExecutionStore) -> None:
    root, _ = await start_running(store)
    child = await create_child(store, root)
    got = await store.claim_next(OTHER_WORKER, 60_000, limit=10)
    assert [c.execution_id for c in got] == [child.id]


async def test_claim_next_skips_what_is_not_runnable(store: ExecutionStore) -> None:
    not_started = await create_root(store, start=False)
    held = await create_root(store)
    await claim(store, held.id)
    running, _ = await start_running(store)
    paused_id = await make_in_status(store, S.PAUSED)
    done = [await make_in_status(store, s) for s in (S.COMPLETED, S.FAILED, S.STOPPED)]
    runnable = await create_root(store)

    got = await store.claim_next(OTHER_WORKER, 60_000, limit=100)
    assert [c.execution_id for c in got] == [runnable.id]
    for execution_id in [not_started.id, held.id, running.id, paused_id, *done]:
        lease = await store.get_claim_for_execution(execution_id)
        assert lease is None or lease.worker_id != OTHER_WORKER


async def test_claim_next_takes_queued_executions_whose_claim_lapsed(
    store: ExecutionStore,
) -> None:
    next_epochs = await lapsed_and_released(store)
    got = await store.claim_next(OTHER_WORKER, 60_000, limit=10)
    assert {c.execution_id: c.epoch for c in got} == next_epochs


async def test_requeued_execution_is_runnable_again(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await set_status(store, execution.id, S.CREATED, lease)
    got = await store.claim_next(OTHER_WORKER, 60_000)
    assert [c.execution_id for c in got] == [execution.id]


async def test_claim_next_respects_retry_delay(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="try later", delay_ms=150
    )
    after_retry = await get_existing(store, execution.id)
    assert after_retry.available_at is not None
    assert await store.claim_next(OTHER_WORKER, 60_000) == []
    await wait_until_past(store, after_retry.available_at)
    got = await store.claim_next(OTHER_WORKER, 60_000)
    assert [c.execution_id for c in got] == [execution.id]


async def test_claim_execution_waits_for_available_at_too(store: ExecutionStore) -> None:
    """`available_at` means "not runnable before": asking for the id does not jump the delay."""
    execution, lease = await start_running(store)
    retried = await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="later", delay_ms=60_000
    )
    assert retried.available_at is not None and retried.available_at > await store.now()
    assert await store.claim_execution(execution.id, OTHER_WORKER, 60_000) is None
    assert (await get_existing(store, execution.id)).processing_worker_id is None


async def test_oldest_available_at_beats_oldest_created(store: ExecutionStore) -> None:
    """A retried execution goes behind executions that became available before it."""
    first, lease = await start_running(store)
    second = await create_root(store)
    await store.retry_execution(
        first.id, worker_id=WORKER, epoch=lease.epoch, reason="again", count_failure=False
    )
    got = await store.claim_next(OTHER_WORKER, 60_000, limit=1)
    assert [c.execution_id for c in got] == [second.id]
    got = await store.claim_next(OTHER_WORKER, 60_000, limit=1)
    assert [c.execution_id for c in got] == [first.id]


async def test_wait_for_work_times_out(store: ExecutionStore) -> None:
    loop = asyncio.get_running_loop()
    await store.wait_for_work(0.05)  # a first call may return at once while it starts listening
    started = loop.time()
    await asyncio.wait_for(store.wait_for_work(0.2), timeout=5)
    assert loop.time() - started >= 0.1  # nothing to wake it: it waited


async def test_wait_for_work_wakes_up_on_new_work(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    await store.wait_for_work(0.05)  # let a listener, if any, get going
    waiter = asyncio.create_task(store.wait_for_work(30))
    await asyncio.sleep(0.2)
    await create_root(other_store)
    await asyncio.wait_for(waiter, timeout=10)  # long before the 30 s timeout
    assert len(await store.claim_next(WORKER, 60_000)) == 1
