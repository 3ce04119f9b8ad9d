"""Retention by status: `purge_finished(statuses=...)` and `count_purgeable`, which tells what
a purge would remove without removing it."""

from __future__ import annotations

from flowexec.model import ExecutionStatus
from flowexec.store.protocol import ExecutionStore

from .helpers import create_child, create_root, make_in_status, set_status, wait_until_past

S = ExecutionStatus


async def test_purge_by_status_removes_only_trees_that_ended_so(store: ExecutionStore) -> None:
    failed = [await make_in_status(store, S.FAILED) for _ in range(2)]
    completed = await make_in_status(store, S.COMPLETED)
    stopped = await make_in_status(store, S.STOPPED)
    live_root = await create_root(store)  # a failed root whose child still runs stays
    await create_child(store, live_root)
    assert await set_status(store, live_root.id, S.RUNNING)
    assert await set_status(store, live_root.id, S.FAILED)
    cutoff = await store.now()
    await wait_until_past(store, cutoff)

    assert await store.count_purgeable(cutoff, statuses=["failed"]) == 2
    assert await store.count_purgeable(cutoff, statuses=["failed", "stopped"]) == 3
    assert await store.count_purgeable(cutoff) == 4
    assert await store.count_purgeable(cutoff) == 4  # counting removed nothing

    assert await store.purge_finished(cutoff, statuses=["failed"]) == 2
    assert [await store.get(i) for i in failed] == [None, None]
    for kept in (completed, stopped, live_root.id):
        assert await store.get(kept) is not None
    assert await store.count_purgeable(cutoff, statuses=["failed"]) == 0
    assert await store.purge_finished(cutoff, statuses=["stopped", "completed"]) == 2
    assert await store.get(live_root.id) is not None


async def test_count_purgeable_honours_the_cutoff(store: ExecutionStore) -> None:
    await make_in_status(store, S.COMPLETED)
    cutoff = await store.now()
    await wait_until_past(store, cutoff)
    await make_in_status(store, S.COMPLETED)
    assert await store.count_purgeable(cutoff) == 1
    assert await store.count_purgeable(await store.now()) == 2
