"""create / get / delete / start_execution / get_statuses, and the store's own basics."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from flowexec import open_store
from flowexec.errors import (
    ClaimLost,
    ConfigError,
    ExecutionExists,
    ExecutionNotFound,
    InvalidTransition,
)
from flowexec.model import ExecutionLimits, ExecutionOptions
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    FLOW,
    OTHER_WORKER,
    OWNER,
    WORKER,
    S,
    assert_times_utc,
    assert_utc,
    build_child,
    build_root,
    claim,
    create_child,
    create_root,
    get_existing,
    live_claim_ids,
    set_status,
    start_running,
    wait_for_lease_end,
)

OPTIONS = ExecutionOptions(
    breakpoints=["node-1", "node-2"],
    debug=True,
    execution=ExecutionLimits(flow_timeout_ms=60_000, max_concurrency=4, node_timeout_ms=5_000),
)


async def test_store_identity(store: ExecutionStore, backend: str, unique_prefix: str) -> None:
    assert isinstance(store, ExecutionStore)
    assert store.backend == backend
    assert store.table_prefix == unique_prefix


async def test_migrate_again_applies_nothing(store: ExecutionStore) -> None:
    assert await store.migrate() == []


async def test_open_store_as_async_context_manager(
    store: ExecutionStore, store_url: str, unique_prefix: str
) -> None:
    root = await create_root(store)
    async with await open_store(store_url, table_prefix=unique_prefix) as second:
        got = await second.get(root.id)
        assert got is not None and got.id == root.id


async def test_open_store_unknown_scheme_is_config_error() -> None:
    with pytest.raises(ConfigError):
        await open_store("mysql://localhost/flowexec")


async def test_now_is_utc_database_clock(store: ExecutionStore) -> None:
    first = await store.now()
    second = await store.now()
    assert_utc(first, "now()")
    assert_utc(second, "now()")
    assert first <= second
    # Same machine: the database clock and ours agree to within a minute.
    assert abs(first - datetime.now(UTC)) < timedelta(minutes=1)


async def test_create_and_get_round_trip(store: ExecutionStore) -> None:
    created_at = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    execution = build_root(
        created_at=created_at,
        options=OPTIONS,
        integration={"source": "github", "payload": {"n": 1, "tags": ["a", "b"], "ok": None}},
        external_events=[{"event_name": "push", "payload": {"ref": "main"}}],
    )
    before = await store.now()
    await store.create(execution)
    after = await store.now()

    got = await get_existing(store, execution.id)
    assert got.id == execution.id
    assert got.flow_id == FLOW
    assert got.owner_id == OWNER
    assert got.root_execution_id == execution.id
    assert got.parent_execution_id is None
    assert got.status is S.CREATED
    assert got.created_at == created_at
    assert got.execution_depth == 0
    assert got.options == OPTIONS
    assert got.integration == execution.integration
    assert got.external_events == execution.external_events
    assert got.failure_count == 0
    for name in (
        "started_at",
        "completed_at",
        "error_message",
        "error_node_id",
        "last_failure_reason",
        "last_failure_at",
        "processing_started_at",
        "processing_worker_id",
        "result",
    ):
        assert getattr(got, name) is None, name
    assert got.available_at is not None
    assert before <= got.available_at <= after
    assert got.content_differences(execution) == []
    assert_times_utc(got)


async def test_create_accepts_options_as_model_or_none(store: ExecutionStore) -> None:
    plain = await create_root(store)
    got = await get_existing(store, plain.id)
    assert got.options is None and got.integration is None and got.external_events is None
    with_dict = await create_root(store, options={"debug": False, "breakpoints": ["x"]})
    got = await get_existing(store, with_dict.id)
    assert got.options == ExecutionOptions(debug=False, breakpoints=["x"])


async def test_get_unknown_is_none(store: ExecutionStore) -> None:
    assert await store.get("EX-does-not-exist") is None


async def test_create_same_content_is_noop(store: ExecutionStore) -> None:
    execution = build_root(options=OPTIONS, integration={"a": 1})
    await store.create(execution)
    first = await get_existing(store, execution.id)
    await store.create(execution)
    assert await get_existing(store, execution.id) == first
    # Timestamps are not content: a retry built a moment later is still the same execution.
    later = dataclasses.replace(
        execution,
        created_at=execution.created_at + timedelta(seconds=5),
        updated_at=execution.updated_at + timedelta(seconds=5),
    )
    await store.create(later)
    assert await get_existing(store, execution.id) == first


async def test_create_same_content_does_not_reset_progress(store: ExecutionStore) -> None:
    execution, lease = await start_running(store)
    running = await get_existing(store, execution.id)
    await store.create(execution)
    assert await get_existing(store, execution.id) == running
    held = await store.get_claim_for_execution(execution.id)
    assert held is not None and held.epoch == lease.epoch and held.worker_id == lease.worker_id
    assert execution.id in await live_claim_ids(store)


@pytest.mark.parametrize(
    "change",
    [
        {"owner_id": "someone-else"},
        {"flow_id": "another-flow"},
        {"options": ExecutionOptions(debug=True)},
        {"integration": {"a": 2}},
        {"external_events": [{"event_name": "e", "payload": 1}]},
    ],
    ids=lambda change: next(iter(change)),
)
async def test_create_different_content_raises_exists(
    store: ExecutionStore, change: dict[str, object]
) -> None:
    execution = build_root(integration={"a": 1})
    await store.create(execution)
    first = await get_existing(store, execution.id)
    with pytest.raises(ExecutionExists) as info:
        await store.create(dataclasses.replace(execution, **change))
    assert info.value.execution_id == execution.id
    assert next(iter(change)) in info.value.differences
    assert await get_existing(store, execution.id) == first


async def test_create_child(store: ExecutionStore) -> None:
    root = await create_root(store, options=OPTIONS)
    child = build_child(root, external_events=[{"event_name": "done", "payload": {"x": 1}}])
    await store.create(child)
    got = await get_existing(store, child.id)
    assert got.parent_execution_id == root.id
    assert got.root_execution_id == root.id
    assert got.execution_depth == 1
    assert got.external_events == child.external_events
    grandchild = await create_child(store, got)
    got2 = await get_existing(store, grandchild.id)
    assert got2.root_execution_id == root.id
    assert got2.parent_execution_id == child.id
    assert got2.execution_depth == 2


async def test_create_child_of_missing_parent_raises_not_found(store: ExecutionStore) -> None:
    ghost = build_root()  # never stored
    orphan = build_child(ghost)
    with pytest.raises(ExecutionNotFound):
        await store.create(orphan)
    assert await store.get(orphan.id) is None


async def test_create_child_fenced_by_parent_claim(store: ExecutionStore) -> None:
    root, lease = await start_running(store)
    child = build_child(root)
    await store.create(child, fence=(lease.worker_id, lease.epoch))
    assert (await get_existing(store, child.id)).parent_execution_id == root.id


@pytest.mark.parametrize("which", ["stale_epoch", "other_worker", "released", "unclaimed"])
async def test_create_child_with_bad_fence_raises_claim_lost(
    store: ExecutionStore, which: str
) -> None:
    root, lease = await start_running(store, timeout_ms=100)
    fence = (lease.worker_id, lease.epoch)
    if which == "stale_epoch":
        await wait_for_lease_end(store, lease)
        await claim(store, root.id, OTHER_WORKER)
    elif which == "other_worker":
        fence = (OTHER_WORKER, lease.epoch)
    elif which == "released":
        assert await store.release_execution(root.id, WORKER)
    else:
        root = await create_root(store)
        fence = (WORKER, 1)
    child = build_child(root)
    with pytest.raises(ClaimLost):
        await store.create(child, fence=fence)
    assert await store.get(child.id) is None
    assert await store.get_child_executions(root.id) == []


async def test_create_not_started_is_not_claimable_until_started(store: ExecutionStore) -> None:
    execution = await create_root(store, start=False)
    got = await get_existing(store, execution.id)
    assert got.status is S.CREATED
    assert got.available_at is None
    assert await store.claim_next(WORKER, 60_000, limit=10) == []
    assert await store.claim_execution(execution.id, WORKER, 60_000) is None

    assert await store.start_execution(execution.id) is True
    got = await get_existing(store, execution.id)
    assert got.status is S.CREATED and got.available_at is not None
    assert await store.start_execution(execution.id) is False  # already runnable
    claims = await store.claim_next(WORKER, 60_000, limit=10)
    assert [c.execution_id for c in claims] == [execution.id]


async def test_start_execution_of_a_started_execution_is_false(store: ExecutionStore) -> None:
    started = await create_root(store)
    assert await store.start_execution(started.id) is False
    running, _ = await start_running(store)
    before = await get_existing(store, running.id)
    # Past the queue: the contract allows "False" or a typed refusal, but no change.
    with contextlib.suppress(InvalidTransition):
        assert await store.start_execution(running.id) is False
    assert await get_existing(store, running.id) == before


async def test_create_not_started_child(store: ExecutionStore) -> None:
    root = await create_root(store, start=False)
    child = await create_child(store, root, start=False)
    assert await store.claim_next(WORKER, 60_000, limit=10) == []
    assert await store.start_execution(child.id)
    claims = await store.claim_next(WORKER, 60_000, limit=10)
    assert [c.execution_id for c in claims] == [child.id]


async def test_delete_unknown_is_false(store: ExecutionStore) -> None:
    assert await store.delete("EX-never-created") is False


async def test_delete_removes_subtree_claims_and_history(store: ExecutionStore) -> None:
    root = await create_root(store)
    child = await create_child(store, root)
    grandchild = await create_child(store, child)
    sibling = await create_child(store, root)
    await claim(store, child.id)
    await claim(store, grandchild.id, OTHER_WORKER)
    await claim(store, sibling.id)
    await store.record_recovery(child.id, "recoverer", "manual")
    await store.record_recovery(grandchild.id, "recoverer", "manual")
    await store.record_recovery(sibling.id, "recoverer", "manual")

    assert await store.delete(child.id) is True

    for gone in (child.id, grandchild.id):
        assert await store.get(gone) is None
        assert await store.get_claim_for_execution(gone) is None
        assert await store.get_recovery_history(gone) == []
    assert await live_claim_ids(store) == {sibling.id}
    assert [e.id for e in await store.get_child_executions(root.id)] == [sibling.id]
    assert await store.get(root.id) is not None
    assert len(await store.get_recovery_history(sibling.id)) == 1
    assert await store.delete(child.id) is False


async def test_delete_root_removes_whole_tree(store: ExecutionStore) -> None:
    root = await create_root(store)
    child = await create_child(store, root)
    grandchild = await create_child(store, child)
    other = await create_root(store)
    assert await store.delete(root.id) is True
    for gone in (root.id, child.id, grandchild.id):
        assert await store.get(gone) is None
    assert await store.get_execution_tree(root.id) == []
    assert [r.execution.id for r in await store.get_root_executions(FLOW)] == [other.id]


async def test_deleted_id_can_be_created_again(store: ExecutionStore) -> None:
    execution = await create_root(store)
    await claim(store, execution.id)
    assert await store.delete(execution.id)
    again = dataclasses.replace(execution, owner_id="new-owner")
    await store.create(again)
    got = await get_existing(store, execution.id)
    assert got.owner_id == "new-owner" and got.status is S.CREATED
    assert await store.get_claim_for_execution(execution.id) is None
    assert await store.claim_execution(execution.id, OTHER_WORKER, 60_000) is not None


async def test_get_statuses(store: ExecutionStore) -> None:
    queued = await create_root(store)
    running, _ = await start_running(store)
    stopped = await create_root(store)
    assert await set_status(store, stopped.id, S.STOPPED)
    statuses = await store.get_statuses([queued.id, running.id, stopped.id, "EX-unknown"])
    assert statuses == {queued.id: S.CREATED, running.id: S.RUNNING, stopped.id: S.STOPPED}
    assert await store.get_statuses([]) == {}
