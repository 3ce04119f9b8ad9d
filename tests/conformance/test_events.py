"""The event log (docs/architecture.md §2, §4, §5): gapless indexes, fencing, lifecycle events
written with their status change, reads from any index, deletes, and subscribers that see every
event exactly once, in order, then the end."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest

from flowexec.errors import ValidationError
from flowexec.model import Completion, EventBatch, ExecutionEvent, NewEvent
from flowexec.store.protocol import ExecutionStore
from flowexec.store.subscription import follow_events

from .helpers import (
    LONG_LEASE_MS,
    OTHER_WORKER,
    SHORT_LEASE_MS,
    WORKER,
    S,
    StoreFactory,
    claim,
    create_root,
    set_status,
    start_running,
    wait_for_lease_end,
)

RECHECK_S = 0.2


def log_event(n: int) -> NewEvent:
    return NewEvent("log", {"message": f"line {n}"})


async def types_of(store: ExecutionStore, execution_id: str) -> list[str]:
    return [e.type for e in await store.get_events(execution_id)]


def assert_gapless(events: Sequence[ExecutionEvent], start: int = 0) -> None:
    assert [e.index for e in events] == list(range(start, start + len(events)))


async def collect(
    store: ExecutionStore, execution_id: str, **kwargs: object
) -> list[ExecutionEvent]:
    kwargs.setdefault("recheck_s", RECHECK_S)
    return [e async for e in follow_events(store, execution_id, **kwargs)]  # type: ignore[arg-type]


# ---------------------------------------------------------------- lifecycle events


async def test_status_changes_write_their_lifecycle_events(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    assert await set_status(store, execution.id, S.PAUSED, lease)
    assert await set_status(store, execution.id, S.RUNNING, expected_status=S.PAUSED)
    assert await set_status(
        store, execution.id, S.FAILED, lease, error_message="boom", error_node_id="n1",
        event_data={"type": "KeyError", "traceback": "Traceback ..."},
    )
    events = await store.get_events(execution.id)
    assert [e.type for e in events] == [
        "flow:started", "flow:paused", "flow:resumed", "flow:failed",
    ]
    assert_gapless(events)
    assert [e.attempt for e in events] == [lease.epoch, lease.epoch, 0, lease.epoch]
    assert events[-1].data == {
        "message": "boom", "node_id": "n1", "type": "KeyError", "traceback": "Traceback ...",
    }
    assert events[-1].execution_id == execution.id
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))


async def test_a_client_stop_of_a_queued_execution_is_logged_without_a_claim(
    store: ExecutionStore,
) -> None:
    execution = await create_root(store)
    assert await set_status(store, execution.id, S.STOPPED)
    [event] = await store.get_events(execution.id)
    assert (event.type, event.attempt, event.index) == ("flow:stopped", 0, 0)


async def test_claim_and_start_logs_started_and_completed(store: ExecutionStore) -> None:
    execution = await create_root(store)
    batch = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=1)
    [started] = batch.started
    await store.claim_and_start(
        WORKER, LONG_LEASE_MS, limit=0,
        complete=[Completion(execution.id, started.claim.epoch, {"ok": True})],
    )
    events = await store.get_events(execution.id)
    assert [(e.type, e.index, e.attempt) for e in events] == [
        ("flow:started", 0, started.claim.epoch),
        ("flow:completed", 1, started.claim.epoch),
    ]
    assert events[0].data == {"worker_id": WORKER}


async def test_a_refused_completion_logs_nothing(store: ExecutionStore) -> None:
    execution = await create_root(store)
    [started] = (await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=1)).started
    stale = Completion(execution.id, started.claim.epoch + 1, None)
    batch = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=0, complete=[stale])
    assert batch.completed == frozenset()
    assert await types_of(store, execution.id) == ["flow:started"]


async def test_retry_logs_retrying_with_the_delay_then_failed_when_it_gives_up(
    store: ExecutionStore,
) -> None:
    execution, lease = await start_running(store)
    await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=lease.epoch, reason="boom", delay_ms=0,
        max_failures=2, event_data={"type": "RuntimeError"},
    )
    second = await claim(store, execution.id)
    assert await set_status(store, execution.id, S.RUNNING, second)
    await store.retry_execution(
        execution.id, worker_id=WORKER, epoch=second.epoch, reason="boom again", delay_ms=5,
        max_failures=2,
    )
    events = await store.get_events(execution.id)
    assert [e.type for e in events] == [
        "flow:started", "flow:retrying", "flow:started", "flow:failed",
    ]
    assert_gapless(events)
    assert events[1].data == {
        "message": "boom", "delay_ms": 0, "failure_counted": True, "type": "RuntimeError",
    }
    assert events[1].attempt == lease.epoch and events[3].attempt == second.epoch
    assert events[3].data == {"message": "boom again"}


async def test_a_refused_status_write_logs_nothing(store: ExecutionStore) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, lease)
    await claim(store, execution.id, OTHER_WORKER)
    before = await types_of(store, execution.id)
    with pytest.raises(Exception):  # noqa: B017 - ClaimLost; only "nothing logged" matters here
        await set_status(store, execution.id, S.COMPLETED, lease)
    assert await types_of(store, execution.id) == before


# ---------------------------------------------------------------- appends


async def test_appends_are_fenced_by_the_claim(store: ExecutionStore) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    assert await store.append_events(
        WORKER, [EventBatch(execution.id, lease.epoch, (log_event(0), log_event(1)))]
    ) == {execution.id}
    await wait_for_lease_end(store, lease)
    taken = await claim(store, execution.id, OTHER_WORKER)
    stale = EventBatch(execution.id, lease.epoch, (log_event(2),))
    assert await store.append_events(WORKER, [stale]) == set()
    wrong_epoch = EventBatch(execution.id, taken.epoch, (log_event(2),))
    assert await store.append_events(WORKER, [wrong_epoch]) == set()
    events = await store.get_events(execution.id)
    assert [e.type for e in events] == ["flow:started", "log", "log"]
    assert [e.attempt for e in events] == [lease.epoch] * 3
    assert events[2].data == {"message": "line 1"}


async def test_one_append_covers_many_executions_and_skips_only_the_stale_ones(
    store: ExecutionStore,
) -> None:
    held = [await start_running(store) for _ in range(3)]
    batches = [EventBatch(e.id, lease.epoch, (log_event(0),)) for e, lease in held]
    batches.append(EventBatch(held[0][0].id + "-missing", 1, (log_event(0),)))
    stale = EventBatch(batches[1].execution_id, batches[1].epoch + 1, (log_event(0),))
    assert await store.append_events(WORKER, [batches[0], stale, batches[2], batches[3]]) == {
        held[0][0].id, held[2][0].id,
    }
    assert await types_of(store, held[1][0].id) == ["flow:started"]


async def test_concurrent_appenders_get_gapless_indexes(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    execution, lease = await start_running(store)
    stores = [store, *[await store_factory() for _ in range(3)]]

    async def append(writer: ExecutionStore, n: int) -> None:
        for round_ in range(10):
            batch = (NewEvent("log", {"writer": n, "round": round_}),) * (1 + round_ % 3)
            assert await writer.append_events(
                WORKER, [EventBatch(execution.id, lease.epoch, batch)]
            ) == {execution.id}

    async def pause_and_resume() -> None:
        for _ in range(5):
            assert await set_status(store, execution.id, S.PAUSED, lease)
            assert await set_status(store, execution.id, S.RUNNING, lease)

    await asyncio.gather(*(append(s, n) for n, s in enumerate(stores)), pause_and_resume())
    events = await store.get_events(execution.id, limit=10_000)
    assert_gapless(events)
    assert len(events) == 1 + 4 * sum(1 + r % 3 for r in range(10)) + 10
    for n in range(4):  # each writer's events stay in its own order
        rounds = [e.data["round"] for e in events if e.data.get("writer") == n]
        assert rounds == sorted(rounds)


async def test_appends_check_their_input(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    for bad in (
        [EventBatch(execution.id, lease.epoch, (NewEvent("flow:completed"),))],
        [EventBatch(execution.id, lease.epoch, (NewEvent("log", {"x": {1, 2}}),))],  # type: ignore[dict-item]
        [EventBatch(execution.id, lease.epoch, ())],
        [EventBatch(execution.id, lease.epoch, (log_event(0),))] * 2,
        EventBatch(execution.id, lease.epoch, (log_event(0),)),
    ):
        with pytest.raises(ValidationError):
            await store.append_events(WORKER, bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await store.get_events(execution.id, from_index=-1)
    with pytest.raises(ValidationError):
        await store.get_events(execution.id, types="log")
    assert await types_of(store, execution.id) == ["flow:started"]


# ---------------------------------------------------------------- reads and deletes


async def test_reads_start_at_any_index_filter_by_type_and_page(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    events = tuple(log_event(n) for n in range(6))
    await store.append_events(WORKER, [EventBatch(execution.id, lease.epoch, events)])
    assert await set_status(store, execution.id, S.COMPLETED, lease)
    middle = await store.get_events(execution.id, from_index=3, limit=2)
    assert [e.index for e in middle] == [3, 4]
    assert [e.data["message"] for e in middle] == ["line 2", "line 3"]
    ends = await store.get_events(execution.id, types=["flow:started", "flow:completed"])
    assert [(e.index, e.type) for e in ends] == [(0, "flow:started"), (7, "flow:completed")]
    assert await store.get_events(execution.id, from_index=8) == []
    assert await store.get_events("no-such-execution") == []


async def test_deleting_or_purging_an_execution_removes_its_events(
    store: ExecutionStore,
) -> None:
    execution, lease = await start_running(store)
    assert await set_status(store, execution.id, S.COMPLETED, lease)
    assert await store.delete(execution.id)
    assert await store.get_events(execution.id) == []
    purged, lease = await start_running(store)
    assert await set_status(store, purged.id, S.COMPLETED, lease)
    assert await store.purge_finished(await store.now()) == 1
    assert await store.get_events(purged.id) == []


async def test_recovery_logs_recovered_and_the_next_attempt_continues_the_indexes(
    store: ExecutionStore,
) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, lease)
    [record] = await store.recover_executions("sweeper", backoff_base_ms=0, max_failures=2)
    [started] = (await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=1)).started
    events = await store.get_events(execution.id)
    assert [e.type for e in events] == ["flow:started", "execution:recovered", "flow:started"]
    assert_gapless(events)
    assert events[1].data["reason"] == record.recovery_reason == "expired_claim"
    assert events[1].attempt == 0 and events[2].attempt == started.claim.epoch


async def test_recovery_that_gives_up_logs_recovered_then_failed(store: ExecutionStore) -> None:
    execution, lease = await start_running(store, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, lease)
    await store.recover_executions("sweeper", max_failures=1)
    events = await store.get_events(execution.id)
    assert [e.type for e in events] == ["flow:started", "execution:recovered", "flow:failed"]
    assert_gapless(events)
    assert "gave up" in str(events[2].data["message"])


# ---------------------------------------------------------------- subscribers


async def run_to_completion(store: ExecutionStore, execution_id: str, lines: int) -> None:
    """Claim, start, append `lines` log events in a few batches, complete."""
    lease = await claim(store, execution_id)
    assert await set_status(store, execution_id, S.RUNNING, lease)
    for n in range(lines):
        await store.append_events(WORKER, [EventBatch(execution_id, lease.epoch, (log_event(n),))])
        await asyncio.sleep(0.01)
    assert await set_status(store, execution_id, S.COMPLETED, lease)


EXPECTED = ["flow:started", *["log"] * 5, "flow:completed"]


@pytest.mark.parametrize("when", ["before it starts", "while it runs", "after it ended"])
async def test_a_subscriber_sees_every_event_once_in_order_then_the_end(
    store: ExecutionStore, other_store: ExecutionStore, when: str
) -> None:
    execution = await create_root(store)
    if when == "after it ended":
        await run_to_completion(other_store, execution.id, 5)
        events = await collect(store, execution.id)
    elif when == "before it starts":
        subscriber = asyncio.create_task(collect(store, execution.id))
        await asyncio.sleep(0.1)
        await run_to_completion(other_store, execution.id, 5)
        events = await asyncio.wait_for(subscriber, 10)
    else:
        runner = asyncio.create_task(run_to_completion(other_store, execution.id, 5))
        while not await store.get_events(execution.id):
            await asyncio.sleep(0.005)
        events = await asyncio.wait_for(collect(store, execution.id), 10)
        await runner
    assert [e.type for e in events] == EXPECTED
    assert_gapless(events)


async def test_two_subscribers_at_once_each_see_everything(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    execution = await create_root(store)
    first = asyncio.create_task(collect(store, execution.id))
    second = asyncio.create_task(collect(store, execution.id, types=["log"]))
    await asyncio.sleep(0.05)
    await run_to_completion(other_store, execution.id, 5)
    assert [e.type for e in await asyncio.wait_for(first, 10)] == EXPECTED
    logs = await asyncio.wait_for(second, 10)
    assert [e.index for e in logs] == [1, 2, 3, 4, 5]  # the filter still ends with the execution


async def test_a_subscriber_that_disconnects_resumes_from_its_last_index(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    execution = await create_root(store)
    runner = asyncio.create_task(run_to_completion(other_store, execution.id, 5))
    seen: list[ExecutionEvent] = []
    async for event in follow_events(store, execution.id, recheck_s=RECHECK_S):
        seen.append(event)
        if len(seen) == 3:
            break  # the subscriber goes away
    seen += await asyncio.wait_for(collect(store, execution.id, from_index=seen[-1].index + 1), 10)
    await runner
    assert [e.type for e in seen] == EXPECTED
    assert_gapless(seen)


async def test_without_follow_it_ends_at_the_last_stored_event(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    await store.append_events(WORKER, [EventBatch(execution.id, lease.epoch, (log_event(0),))])
    events = await asyncio.wait_for(collect(store, execution.id, follow=False, page_size=1), 5)
    assert [e.type for e in events] == ["flow:started", "log"]


async def test_a_lost_notification_only_delays(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    listener = getattr(store, "_listener", None)
    if listener is not None:  # PostgreSQL: drop every events notification this store receives
        listener._on_events = lambda payload: None
    execution = await create_root(store)
    subscriber = asyncio.create_task(collect(store, execution.id))
    await asyncio.sleep(0.05)
    await run_to_completion(other_store, execution.id, 5)
    events = await asyncio.wait_for(subscriber, 10)
    assert [e.type for e in events] == EXPECTED


async def test_live_events_arrive_without_waiting_for_the_re_read(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    execution = await create_root(store)
    subscriber = asyncio.create_task(collect(store, execution.id, recheck_s=30))
    await asyncio.sleep(0.2)  # subscribed and waiting (PostgreSQL: registered, listening)
    await run_to_completion(other_store, execution.id, 5)
    events = await asyncio.wait_for(subscriber, 5)
    assert [e.type for e in events] == EXPECTED
