"""Durable steps in the store (docs/architecture.md §11): node results recorded with the run's
events under the claim's fence, read back by execution, first result kept, removed with the
execution, and bad input refused with nothing written."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowexec.errors import ValidationError
from flowexec.model import EventBatch, NewEvent, NodeCheckpoint
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    OTHER_WORKER,
    SHORT_LEASE_MS,
    WORKER,
    S,
    claim,
    set_status,
    start_running,
    wait_for_lease_end,
)


def completed(node_id: str) -> NewEvent:
    return NewEvent("node:completed", {"node_id": node_id, "duration_ms": 1})


def recording(execution_id: str, epoch: int, **results: object) -> EventBatch:
    """A batch that records `results` by node id, with each node's `node:completed` event."""
    return EventBatch(
        execution_id,
        epoch,
        tuple(completed(n) for n in results),
        tuple(NodeCheckpoint(n, r) for n, r in results.items()),  # type: ignore[arg-type]
    )


async def test_checkpoints_are_recorded_with_their_events_and_read_back(
    store: ExecutionStore,
) -> None:
    execution, lease = await start_running(store)
    assert await store.get_checkpoints(execution.id) == {}
    result = {"rows": [1, 2.5, "three", None, True], "nested": {"k": {}}}
    assert await store.append_events(
        WORKER, [recording(execution.id, lease.epoch, fetch=result, count=3, empty=None)]
    ) == {execution.id}
    assert await store.get_checkpoints(execution.id) == {
        "fetch": result, "count": 3, "empty": None,
    }
    events = await store.get_events(execution.id)
    assert [(e.type, e.data.get("node_id")) for e in events[1:]] == [
        ("node:completed", "fetch"), ("node:completed", "count"), ("node:completed", "empty"),
    ]
    assert await store.get_checkpoints("no-such-execution") == {}


async def test_a_batch_may_record_checkpoints_without_events(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    batch = EventBatch(execution.id, lease.epoch, (), (NodeCheckpoint("sleep", {"until": 1}),))
    assert await store.append_events(WORKER, [batch]) == {execution.id}
    assert await store.get_checkpoints(execution.id) == {"sleep": {"until": 1}}
    assert [e.type for e in await store.get_events(execution.id)] == ["flow:started"]


async def test_checkpoints_are_fenced_and_a_stale_holder_records_nothing(
    store: ExecutionStore,
) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    assert await store.append_events(WORKER, [recording(execution.id, lease.epoch, a=1)])
    await wait_for_lease_end(store, lease)
    taken = await claim(store, execution.id, OTHER_WORKER)
    assert await store.append_events(WORKER, [recording(execution.id, lease.epoch, b=2)]) == set()
    assert await store.append_events(WORKER, [recording(execution.id, taken.epoch, c=3)]) == set()
    assert await store.get_checkpoints(execution.id) == {"a": 1}
    assert await store.append_events(
        OTHER_WORKER, [recording(execution.id, taken.epoch, d=4)]
    ) == {execution.id}
    assert await store.get_checkpoints(execution.id) == {"a": 1, "d": 4}


async def test_one_append_records_many_executions_and_skips_only_the_stale_ones(
    store: ExecutionStore,
) -> None:
    held = [await start_running(store) for _ in range(3)]
    batches = [recording(e.id, lease.epoch, step=n) for n, (e, lease) in enumerate(held)]
    stale = recording(held[1][0].id, held[1][1].epoch + 1, step=9)
    assert await store.append_events(WORKER, [batches[0], stale, batches[2]]) == {
        held[0][0].id, held[2][0].id,
    }
    assert [await store.get_checkpoints(e.id) for e, _ in held] == [{"step": 0}, {}, {"step": 2}]


async def test_a_node_recorded_again_keeps_its_first_result(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await store.append_events(WORKER, [recording(execution.id, lease.epoch, a="first")])
    assert await store.append_events(WORKER, [recording(execution.id, lease.epoch, a="second")])
    assert await store.get_checkpoints(execution.id) == {"a": "first"}


async def test_bad_checkpoints_are_refused_and_nothing_is_written(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    for checkpoints in (
        (NodeCheckpoint("a", {1, 2}),),  # not JSON
        (NodeCheckpoint("a", float("nan")),),
        (NodeCheckpoint("", 1),),  # not an id
        (NodeCheckpoint("a", 1), NodeCheckpoint("a", 2)),  # one node twice
        ({"node_id": "a", "result": 1},),  # not a NodeCheckpoint
        "a",
    ):
        batch = EventBatch(execution.id, lease.epoch, (completed("a"),), checkpoints)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await store.append_events(WORKER, [batch])
    with pytest.raises(ValidationError):
        await store.get_checkpoints("")
    assert await store.get_checkpoints(execution.id) == {}
    assert [e.type for e in await store.get_events(execution.id)] == ["flow:started"]


async def test_deleting_or_purging_an_execution_removes_its_checkpoints(
    store: ExecutionStore,
) -> None:
    execution, lease = await start_running(store)
    assert await store.append_events(WORKER, [recording(execution.id, lease.epoch, a=1)])
    assert await set_status(store, execution.id, S.COMPLETED, lease)
    assert await store.delete(execution.id)
    assert await store.get_checkpoints(execution.id) == {}
    purged, lease = await start_running(store)
    assert await store.append_events(WORKER, [recording(purged.id, lease.epoch, a=1)])
    assert await set_status(store, purged.id, S.COMPLETED, lease)
    assert await store.purge_finished(await store.now()) == 1
    assert await store.get_checkpoints(purged.id) == {}


async def test_a_suspension_requeues_for_later_without_counting_a_failure(
    store: ExecutionStore,
) -> None:
    execution, lease = await start_running(store)
    before = await store.now()
    suspended = await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="sleeping", delay_ms=60_000,
        count_failure=True, max_failures=1, suspend=True,
    )
    assert suspended.status is S.CREATED and suspended.failure_count == 0
    assert suspended.last_failure_reason is None and suspended.processing_worker_id is None
    assert suspended.available_at is not None
    assert suspended.available_at >= before + timedelta(seconds=59)
    assert await store.claim_next(OTHER_WORKER, 1_000, limit=1) == [], "not before its time"
    [event] = (await store.get_events(execution.id))[1:]
    assert event.type == "flow:suspended"
    assert event.data == {"message": "sleeping", "delay_ms": 60_000}
