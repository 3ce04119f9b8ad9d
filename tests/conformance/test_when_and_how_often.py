"""Delayed starts, priorities and idempotency keys, on both backends."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from flowexec.errors import ValidationError
from flowexec.model import MAX_PRIORITY, new_execution
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    FLOW,
    LONG_LEASE_MS,
    OTHER_FLOW,
    WORKER,
    S,
    StoreFactory,
    build_child,
    build_root,
    create_root,
    get_existing,
    wait_until_past,
)

# ---------------------------------------------------------------- delayed start


async def test_a_delayed_start_is_created_and_runnable_from_its_time(
    store: ExecutionStore,
) -> None:
    run_at = await store.now() + timedelta(milliseconds=300)
    delayed = await create_root(store, run_at=run_at)
    stored = await get_existing(store, delayed.id)
    assert stored.status is S.CREATED
    assert stored.available_at == run_at
    assert await store.claim_next(WORKER, LONG_LEASE_MS) == []
    assert (await store.get_stats()).oldest_queued_at is None  # waiting for its time
    await wait_until_past(store, run_at)
    [claim] = await store.claim_next(WORKER, LONG_LEASE_MS)
    assert claim.execution_id == delayed.id


async def test_a_start_time_in_the_past_queues_as_of_now(store: ExecutionStore) -> None:
    before = await store.now()
    late = await create_root(store, run_at=datetime(2001, 1, 1, tzinfo=UTC))
    stored = await get_existing(store, late.id)
    assert stored.available_at is not None and stored.available_at >= before


async def test_start_makes_a_delayed_execution_runnable_at_once(store: ExecutionStore) -> None:
    delayed = await create_root(store, run_at=await store.now() + timedelta(hours=1))
    assert await store.start_execution(delayed.id) is True
    assert await store.start_execution(delayed.id) is False
    [claim] = await store.claim_next(WORKER, LONG_LEASE_MS)
    assert claim.execution_id == delayed.id


async def test_a_delayed_execution_not_started_waits_for_start(store: ExecutionStore) -> None:
    parked = await create_root(store, start=False, run_at=await store.now())
    assert (await get_existing(store, parked.id)).available_at is None
    assert await store.claim_next(WORKER, LONG_LEASE_MS) == []


async def test_create_many_keeps_each_start_time(store: ExecutionStore) -> None:
    now = await store.now()
    soon, later = build_root(run_at=now), build_root(run_at=now + timedelta(hours=2))
    await store.create_many([soon, later])
    assert (await get_existing(store, later.id)).available_at == now + timedelta(hours=2)
    claims = await store.claim_next(WORKER, LONG_LEASE_MS, limit=10)
    assert [c.execution_id for c in claims] == [soon.id]


# ---------------------------------------------------------------- priorities


async def test_one_urgent_execution_created_last_starts_before_a_thousand(
    store: ExecutionStore,
) -> None:
    await store.create_many([build_root(priority=5) for _ in range(1000)])
    urgent = await create_root(store, priority=0)
    batch = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=1)
    assert [s.execution.id for s in batch.started] == [urgent.id]


async def test_within_a_priority_the_oldest_runs_first(store: ExecutionStore) -> None:
    first = await create_root(store, priority=2)
    urgent = await create_root(store, priority=-1)
    second = await create_root(store, priority=2)
    claims = await store.claim_next(WORKER, LONG_LEASE_MS, limit=3)
    assert [c.execution_id for c in claims] == [urgent.id, first.id, second.id]


async def test_children_inherit_their_parents_priority(store: ExecutionStore) -> None:
    parent = await create_root(store, priority=7)
    inherited, chosen = build_child(parent), build_child(parent, priority=1)
    await store.create(inherited)
    await store.create(chosen)
    assert (await get_existing(store, inherited.id)).priority == 7
    assert (await get_existing(store, chosen.id)).priority == 1


@pytest.mark.parametrize("bad", [MAX_PRIORITY + 1, True, "1", 1.5])
async def test_a_bad_priority_is_refused_and_writes_nothing(
    store: ExecutionStore, bad: object
) -> None:
    execution = dataclasses.replace(build_root(), priority=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="priority"):
        await store.create(execution)
    assert await store.get(execution.id) is None


# ---------------------------------------------------------------- idempotency keys


async def test_eight_concurrent_creates_with_one_key_make_one_execution(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    stores = [store, *await asyncio.gather(*(store_factory() for _ in range(7)))]
    candidates = [build_root(idempotency_key="order-123") for _ in stores]
    ids = await asyncio.gather(*(s.create(c) for s, c in zip(stores, candidates, strict=True)))
    assert len(set(ids)) == 1
    stored = [await s.get(c.id) for s, c in zip(stores, candidates, strict=True)]
    assert sum(e is not None for e in stored) == 1
    holder = await store.get_by_idempotency_key(FLOW, "order-123")
    assert holder is not None and holder.id == ids[0]


async def test_a_key_is_per_flow_and_freed_by_delete(store: ExecutionStore) -> None:
    first = await create_root(store, idempotency_key="k")
    other_flow = build_root(flow_id=OTHER_FLOW, idempotency_key="k")
    assert await store.create(other_flow) == other_flow.id
    assert await store.create(build_root(idempotency_key="k")) == first.id
    assert await store.delete(first.id)
    again = build_root(idempotency_key="k")
    assert await store.create(again) == again.id


async def test_create_many_leaves_out_what_a_key_already_holds(store: ExecutionStore) -> None:
    holder = await create_root(store, idempotency_key="dup")
    fresh, duplicate = build_root(idempotency_key="new"), build_root(idempotency_key="dup")
    twin = build_root(idempotency_key="new")
    inserted = await store.create_many([fresh, duplicate, twin])
    assert len(inserted) == 1 and inserted <= {fresh.id, twin.id}
    assert await store.get(duplicate.id) is None
    assert (await get_existing(store, holder.id)).idempotency_key == "dup"


async def test_a_bad_key_is_refused_and_writes_nothing(store: ExecutionStore) -> None:
    execution = new_execution(FLOW, "owner")
    bad = dataclasses.replace(execution, idempotency_key="")
    with pytest.raises(ValidationError, match="idempotency_key"):
        await store.create(bad)
    assert await store.get(execution.id) is None
