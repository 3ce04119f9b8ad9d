"""`get_queue_stats`: per-flow queue figures for monitoring, the same on both backends."""

from __future__ import annotations

from flowexec.model import FlowQueueStats
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    FLOW,
    OTHER_FLOW,
    WORKER,
    S,
    assert_utc,
    create_root,
    get_existing,
    make_in_status,
)


def by_flow(stats: list[FlowQueueStats]) -> dict[str, FlowQueueStats]:
    return {s.flow_id: s for s in stats}


async def test_an_empty_store_has_no_queue(store: ExecutionStore) -> None:
    assert await store.get_queue_stats() == []


async def test_counts_each_flows_unfinished_work_by_state(store: ExecutionStore) -> None:
    first = await create_root(store, flow_id=FLOW)
    await create_root(store, flow_id=FLOW)
    await create_root(store, flow_id=FLOW, start=False)  # not started: not queued
    await make_in_status(store, S.RUNNING, flow_id=FLOW)
    await make_in_status(store, S.PAUSED, flow_id=FLOW)
    for finished in (S.COMPLETED, S.FAILED, S.STOPPED):
        await make_in_status(store, finished, flow_id=FLOW)
    await create_root(store, flow_id=OTHER_FLOW)
    # Claimed but not started: out of the queue until the lease's end.
    assert len(await store.claim_next(WORKER, 60_000, limit=1, flow_ids=[OTHER_FLOW])) == 1
    await make_in_status(store, S.RUNNING, flow_id=OTHER_FLOW)

    stats = await store.get_queue_stats()
    assert [s.flow_id for s in stats] == sorted([FLOW, OTHER_FLOW])
    flows = by_flow(stats)
    a, b = flows[FLOW], flows[OTHER_FLOW]
    assert (a.queued, a.delayed, a.running, a.paused) == (2, 0, 1, 1)
    assert (b.queued, b.delayed, b.running, b.paused) == (0, 1, 1, 0)
    assert a.oldest_queued_at == (await get_existing(store, first.id)).available_at
    assert b.oldest_queued_at is None and b.oldest_queued_age_s == 0.0
    for s in stats:
        assert_utc(s.measured_at, "measured_at")
    assert_utc(a.oldest_queued_at, "oldest_queued_at")
    assert a.measured_at >= a.oldest_queued_at  # type: ignore[operator]
    assert a.oldest_queued_age_s == (a.measured_at - a.oldest_queued_at).total_seconds()  # type: ignore[operator]


async def test_the_oldest_age_follows_the_database_clock(store: ExecutionStore) -> None:
    await create_root(store)
    before = (await store.get_queue_stats())[0]
    later = (await store.get_queue_stats())[0]
    assert later.oldest_queued_at == before.oldest_queued_at
    assert later.measured_at > before.measured_at
    assert later.oldest_queued_age_s > before.oldest_queued_age_s


async def test_a_flow_whose_work_finished_drops_out(store: ExecutionStore) -> None:
    await make_in_status(store, S.COMPLETED, flow_id=OTHER_FLOW)
    await create_root(store, flow_id=FLOW)
    assert [s.flow_id for s in await store.get_queue_stats()] == [FLOW]
