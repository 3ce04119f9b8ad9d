"""Per-flow running limits in the claim, and cron slots filled once, on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from flowexec.errors import ValidationError
from flowexec.model import Completion
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
    get_existing,
    set_status,
)

LIMITS = {FLOW: 2}


async def running_of(store: ExecutionStore, flow_id: str) -> int:
    roots = await store.get_root_executions(flow_id, limit=500)
    return sum(r.execution.status is S.RUNNING for r in roots)


async def test_the_claim_starts_no_more_than_a_flows_limit(store: ExecutionStore) -> None:
    await store.create_many([build_root() for _ in range(5)])
    others = [build_root(flow_id=OTHER_FLOW) for _ in range(3)]
    await store.create_many(others)
    batch = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=10, running_limits=LIMITS)
    flows = sorted(s.execution.flow_id for s in batch.started)
    assert flows == [FLOW, FLOW] + [OTHER_FLOW] * 3
    again = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=10, running_limits=LIMITS)
    assert again.started == []
    assert await running_of(store, FLOW) == 2


async def test_a_completion_in_the_same_call_makes_room(store: ExecutionStore) -> None:
    await store.create_many([build_root() for _ in range(3)])
    first = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=5, running_limits={FLOW: 1})
    [started] = first.started
    done = Completion(started.execution.id, started.claim.epoch, result={"ok": True})
    second = await store.claim_and_start(
        WORKER, LONG_LEASE_MS, limit=0, complete=[done], running_limits={FLOW: 1}
    )
    assert second.completed == {started.execution.id}
    assert len(second.started) == 1
    assert await running_of(store, FLOW) == 1


async def test_a_paused_execution_leaves_its_place(store: ExecutionStore) -> None:
    await store.create_many([build_root() for _ in range(2)])
    first = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=5, running_limits={FLOW: 1})
    [started] = first.started
    await set_status(store, started.execution.id, S.PAUSED, started.claim)
    second = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=5, running_limits={FLOW: 1})
    assert len(second.started) == 1


async def test_concurrent_claimers_never_exceed_the_limit(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    await store.create_many([build_root() for _ in range(12)])
    stores = [store, *await asyncio.gather(*(store_factory() for _ in range(3)))]
    for _ in range(3):
        batches = await asyncio.gather(*(
            s.claim_and_start(f"w{n}", LONG_LEASE_MS, limit=3, running_limits=LIMITS)
            for n, s in enumerate(stores)
        ))
        assert await running_of(store, FLOW) <= 2
        for batch in batches:
            await asyncio.gather(*(
                set_status(store, s.execution.id, S.COMPLETED, s.claim)
                for s in batch.started
            ))


@pytest.mark.parametrize("bad", [{FLOW: 0}, {FLOW: True}, {"": 1}, [FLOW]])
async def test_bad_running_limits_are_refused(store: ExecutionStore, bad: object) -> None:
    await store.create(build_root())
    with pytest.raises(ValidationError, match="running_limits"):
        await store.claim_and_start(WORKER, LONG_LEASE_MS, running_limits=bad)  # type: ignore[arg-type]
    assert await store.claim_next(WORKER, LONG_LEASE_MS) != []


SLOT = datetime(2026, 12, 24, 18, 0, tzinfo=UTC)


async def test_two_stores_at_one_slot_create_one_execution(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    candidates = [build_root(), build_root()]
    filled = await asyncio.gather(
        store.fill_schedule_slot("nightly", SLOT, candidates[0]),
        other_store.fill_schedule_slot("nightly", SLOT, candidates[1]),
    )
    assert sorted(filled) == [False, True]
    winner = candidates[filled.index(True)]
    loser = candidates[filled.index(False)]
    assert await store.get(loser.id) is None
    assert (await get_existing(store, winner.id)).status is S.CREATED
    [claim] = await store.claim_next(WORKER, LONG_LEASE_MS, limit=5)
    assert claim.execution_id == winner.id
    slots = await other_store.get_last_slots(["nightly", "never"])
    assert list(slots) == ["nightly"]
    assert slots["nightly"].slot_at == SLOT and slots["nightly"].execution_id == winner.id


async def test_the_last_slot_is_the_latest_filled(store: ExecutionStore) -> None:
    later = SLOT + timedelta(minutes=5)
    assert await store.fill_schedule_slot("every-5", later, build_root())
    assert await store.fill_schedule_slot("every-5", SLOT, build_root())
    assert (await store.get_last_slots(["every-5"]))["every-5"].slot_at == later


async def test_a_slot_takes_only_a_root(store: ExecutionStore) -> None:
    parent = build_root()
    await store.create(parent)
    with pytest.raises(ValidationError, match="root"):
        await store.fill_schedule_slot("s", SLOT, build_child(parent))
    assert await store.get_last_slots(["s"]) == {}
