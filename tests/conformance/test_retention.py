"""Operations (docs/architecture.md §6): retention (`purge_finished`, by age and by status, and
`count_purgeable`, which tells what a purge would remove without removing it) and stats."""

from __future__ import annotations

from flowexec.store.protocol import ExecutionStore

from .helpers import (
    RECOVERER,
    S,
    assert_utc,
    create_child,
    create_root,
    get_existing,
    make_in_status,
    set_status,
    start_running,
    wait_until_past,
)


async def test_purge_finished_deletes_whole_finished_trees(store: ExecutionStore) -> None:
    finished_roots = []
    children = []
    for terminal in (S.COMPLETED, S.FAILED, S.STOPPED):
        root = await create_root(store)
        child = await create_child(store, root)
        assert await set_status(store, child.id, S.STOPPED)
        await store.record_recovery(child.id, RECOVERER, "manual")
        assert await set_status(store, root.id, S.RUNNING)
        assert await set_status(store, root.id, terminal)
        finished_roots.append(root)
        children.append(child)
    running, _ = await start_running(store)
    queued = await create_root(store)
    cutoff = await store.now()
    await wait_until_past(store, cutoff)
    late_id = await make_in_status(store, S.COMPLETED)  # finished after the cutoff

    assert await store.purge_finished(cutoff) == 3
    for gone in finished_roots + children:
        assert await store.get(gone.id) is None
        assert await store.get_recovery_history(gone.id) == []
    for kept in (running.id, queued.id, late_id):
        assert await store.get(kept) is not None
    assert await store.purge_finished(cutoff) == 0


async def test_purge_finished_respects_limit(store: ExecutionStore) -> None:
    ids = [await make_in_status(store, S.COMPLETED) for _ in range(5)]
    cutoff = await store.now()
    await wait_until_past(store, cutoff)
    assert await store.purge_finished(cutoff, limit=2) == 2
    assert await store.purge_finished(cutoff, limit=2) == 2
    assert await store.purge_finished(cutoff, limit=2) == 1
    assert await store.purge_finished(cutoff, limit=2) == 0
    assert [await store.get(i) for i in ids] == [None] * 5


async def test_stats(store: ExecutionStore) -> None:
    empty = await store.get_stats()
    assert sum(empty.counts_by_status.values()) == 0
    assert empty.active_claims == 0
    assert empty.oldest_queued_at is None
    assert empty.recoveries_last_hour == 0

    first_queued = await create_root(store)
    await create_root(store)
    await start_running(store)
    await make_in_status(store, S.COMPLETED)
    paused, lease = await start_running(store)
    assert await set_status(store, paused.id, S.PAUSED, lease)
    await store.record_recovery(paused.id, RECOVERER, "manual")
    stats = await store.get_stats()
    counts = stats.counts_by_status
    assert counts.get("created", 0) == 2
    assert counts.get("running", 0) == 1
    assert counts.get("paused", 0) == 1
    assert counts.get("completed", 0) == 1
    assert counts.get("failed", 0) == 0
    assert stats.active_claims == 2
    assert stats.recoveries_last_hour == 1
    assert stats.oldest_queued_at is not None
    assert_utc(stats.oldest_queued_at, "oldest_queued_at")
    queued_at = await get_existing(store, first_queued.id)
    assert stats.oldest_queued_at <= max(queued_at.created_at, queued_at.available_at)  # type: ignore[type-var]
    assert stats.oldest_queued_at <= await store.now()


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
