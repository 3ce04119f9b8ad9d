"""Trees of executions: root listing (keyset pagination, aggregates), children, subtrees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flowexec.errors import ValidationError
from flowexec.model import (
    Execution,
    ExecutionStatus,
    ExecutionTreeNode,
    RootExecution,
    UpdateExecutionStatusParams,
)
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    FLOW,
    OTHER_FLOW,
    assert_times_utc,
    build_root,
    create_chain,
    create_child,
    create_root,
    get_existing,
)

BASE = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def newest_first(executions: list[Execution]) -> list[str]:
    return [e.id for e in sorted(executions, key=lambda e: (e.created_at, e.id), reverse=True)]


async def all_pages(
    store: ExecutionStore, flow_id: str, limit: int, **kwargs: object
) -> list[list[RootExecution]]:
    pages: list[list[RootExecution]] = []
    after: RootExecution | None = None
    while True:
        page = await store.get_root_executions(flow_id, limit, after, **kwargs)  # type: ignore[arg-type]
        assert len(page) <= limit
        if not page:
            return pages
        pages.append(page)
        after = page[-1]
        assert len(pages) < 1000, "pagination does not end"


async def build_tree(store: ExecutionStore) -> dict[str, Execution]:
    """root -> (a, b); a -> (a1, a2); b -> b1; a1 -> a11."""
    t: dict[str, Execution] = {"root": await create_root(store)}
    for name, parent in [
        ("a", "root"),
        ("b", "root"),
        ("a1", "a"),
        ("a2", "a"),
        ("b1", "b"),
        ("a11", "a1"),
    ]:
        t[name] = await create_child(store, t[parent])
    return t


def expected_tree(t: dict[str, Execution], top: str) -> list[tuple[int, str]]:
    """(level, id) of the subtree under `top`, from the tree's own parent links."""
    by_id = {e.id: e for e in t.values()}
    out = []
    for e in by_id.values():
        level, cursor = 0, e
        while cursor.id != t[top].id and cursor.parent_execution_id is not None:
            cursor = by_id[cursor.parent_execution_id]
            level += 1
        if cursor.id == t[top].id:
            out.append((level, e.id))
    return sorted(out)


# ---------------------------------------------------------------- root listing


async def test_root_listing_is_newest_first_and_roots_only(store: ExecutionStore) -> None:
    roots = []
    for i in range(4):
        root = build_root(created_at=BASE + timedelta(seconds=i))
        await store.create(root)
        roots.append(root)
    await create_child(store, roots[0])
    await store.create(build_root(flow_id=OTHER_FLOW, created_at=BASE + timedelta(seconds=9)))

    listed = await store.get_root_executions(FLOW)
    assert [r.execution.id for r in listed] == [r.id for r in reversed(roots)]
    for item in listed:
        assert item.execution == await get_existing(store, item.execution.id)
        assert_times_utc(item.execution)
    assert await store.get_root_executions("flow-with-nothing") == []


async def test_root_listing_limit(store: ExecutionStore) -> None:
    roots = [build_root(created_at=BASE + timedelta(minutes=i)) for i in range(6)]
    for root in roots:
        await store.create(root)
    listed = await store.get_root_executions(FLOW, 4)
    assert [r.execution.id for r in listed] == newest_first(roots)[:4]
    listed = await store.get_root_executions(FLOW, limit=1)
    assert [r.execution.id for r in listed] == newest_first(roots)[:1]


async def test_root_listing_owner_filter(store: ExecutionStore) -> None:
    mine = [build_root(owner_id="alice", created_at=BASE + timedelta(seconds=i)) for i in range(3)]
    theirs = [build_root(owner_id="bob", created_at=BASE + timedelta(seconds=i)) for i in range(2)]
    for root in mine + theirs:
        await store.create(root)
    listed = await store.get_root_executions(FLOW, owner_id="alice")
    assert [r.execution.id for r in listed] == newest_first(mine)
    listed = await store.get_root_executions(FLOW, owner_id="bob")
    assert [r.execution.id for r in listed] == newest_first(theirs)
    assert await store.get_root_executions(FLOW, owner_id="carol") == []
    pages = await all_pages(store, FLOW, 2, owner_id="alice")
    assert [r.execution.id for page in pages for r in page] == newest_first(mine)


async def test_root_listing_status_filter(store: ExecutionStore) -> None:
    roots = [build_root(owner_id=o, created_at=BASE + timedelta(seconds=i))
             for i, o in enumerate(["alice", "alice", "bob", "alice"])]
    for root in roots:
        await store.create(root)
    stopped = [roots[0], roots[2], roots[3]]
    for root in stopped:
        await store.update_execution_status(
            UpdateExecutionStatusParams(root.id, ExecutionStatus.STOPPED)
        )
    listed = await store.get_root_executions(FLOW, status="stopped")
    assert [r.execution.id for r in listed] == newest_first(stopped)
    listed = await store.get_root_executions(FLOW, status=ExecutionStatus.CREATED)
    assert [r.execution.id for r in listed] == [roots[1].id]
    pages = await all_pages(store, FLOW, 1, owner_id="alice", status="stopped")
    assert [r.execution.id for page in pages for r in page] == newest_first(
        [roots[0], roots[3]]
    )
    with pytest.raises(ValidationError, match="status 'done' is not one of"):
        await store.get_root_executions(FLOW, status="done")


async def test_root_aggregates_levels_and_total_nested(store: ExecutionStore) -> None:
    lonely = await create_root(store)
    t = await build_tree(store)
    listed = {r.execution.id: r for r in await store.get_root_executions(FLOW)}
    assert (listed[lonely.id].levels, listed[lonely.id].total_nested) == (0, 0)
    assert (listed[t["root"].id].levels, listed[t["root"].id].total_nested) == (3, 6)

    # Aggregates follow the tree as it changes.
    assert await store.delete(t["a1"].id)  # takes a11 with it
    listed = {r.execution.id: r for r in await store.get_root_executions(FLOW)}
    assert (listed[t["root"].id].levels, listed[t["root"].id].total_nested) == (2, 4)
    await create_chain_under(store, t["b1"], 3)
    listed = {r.execution.id: r for r in await store.get_root_executions(FLOW)}
    assert (listed[t["root"].id].levels, listed[t["root"].id].total_nested) == (5, 7)
    assert (listed[lonely.id].levels, listed[lonely.id].total_nested) == (0, 0)


async def create_chain_under(store: ExecutionStore, parent: Execution, length: int) -> None:
    for _ in range(length):
        parent = await create_child(store, parent)


async def test_root_aggregates_on_every_page(store: ExecutionStore) -> None:
    expected: dict[str, tuple[int, int]] = {}
    for i in range(7):
        root = build_root(created_at=BASE + timedelta(seconds=i // 2))
        await store.create(root)
        parent = root
        for _ in range(i % 3):
            parent = await create_child(store, parent)
        for _ in range(i % 2):
            await create_child(store, root)
        expected[root.id] = (max(i % 3, i % 2), i % 3 + i % 2)
    pages = await all_pages(store, FLOW, 3)
    got = {r.execution.id: (r.levels, r.total_nested) for page in pages for r in page}
    assert got == expected


async def test_keyset_pagination_with_identical_created_at(store: ExecutionStore) -> None:
    roots = []
    for i in range(23):
        root = build_root(created_at=BASE + timedelta(seconds=i // 5))  # groups of 5 equal times
        await store.create(root)
        roots.append(root)
        if i % 4 == 0:
            await create_child(store, root)
    expected = newest_first(roots)
    for limit in (1, 2, 4, 5, 7, 50):
        pages = await all_pages(store, FLOW, limit)
        seen = [r.execution.id for page in pages for r in page]
        assert seen == expected, f"limit={limit}"
        assert all(len(page) == limit for page in pages[:-1]), f"limit={limit}"


async def test_pagination_after_a_datetime(store: ExecutionStore) -> None:
    roots = []
    for i in range(9):
        root = build_root(created_at=BASE + timedelta(seconds=i // 3))
        await store.create(root)
        roots.append(root)
    cutoff = BASE + timedelta(seconds=2)
    older = newest_first([r for r in roots if r.created_at < cutoff])
    listed = await store.get_root_executions(FLOW, 50, cutoff)
    assert [r.execution.id for r in listed] == older
    between = BASE + timedelta(seconds=1, milliseconds=500)
    listed = await store.get_root_executions(FLOW, 2, between)
    assert [r.execution.id for r in listed] == newest_first(roots[3:6])[:2]
    assert await store.get_root_executions(FLOW, 50, BASE) == []
    # An aware datetime in another zone means the same instant.
    other_zone = cutoff.astimezone(ZoneInfo("Asia/Tokyo"))
    listed = await store.get_root_executions(FLOW, 50, after=other_zone)
    assert [r.execution.id for r in listed] == older


async def test_pagination_after_a_root_of_another_page(store: ExecutionStore) -> None:
    roots = [build_root(created_at=BASE) for _ in range(6)]  # all at the same instant
    for root in roots:
        await store.create(root)
    expected = newest_first(roots)
    first = await store.get_root_executions(FLOW, 3)
    assert [r.execution.id for r in first] == expected[:3]
    rest = await store.get_root_executions(FLOW, 10, first[-1])
    assert [r.execution.id for r in rest] == expected[3:]


# ---------------------------------------------------------------- children and subtrees


async def test_get_child_executions(store: ExecutionStore) -> None:
    t = await build_tree(store)
    children = await store.get_child_executions(t["a"].id)
    assert sorted(e.id for e in children) == sorted([t["a1"].id, t["a2"].id])
    for child in children:
        assert child == await get_existing(store, child.id)
    assert sorted(e.id for e in await store.get_child_executions(t["root"].id)) == sorted(
        [t["a"].id, t["b"].id]
    )
    assert await store.get_child_executions(t["a11"].id) == []
    assert await store.get_child_executions("EX-unknown") == []


def check_tree(nodes: list[ExecutionTreeNode], expected: list[tuple[int, str]]) -> None:
    assert [(n.level, n.id) for n in nodes] == expected
    ids = {n.id for n in nodes}
    for n in nodes:
        assert n.execution.id == n.id
        if n.level > 0:
            assert n.parent_id == n.execution.parent_execution_id
            assert n.parent_id in ids
        assert_times_utc(n.execution)


async def test_tree_from_the_root(store: ExecutionStore) -> None:
    t = await build_tree(store)
    nodes = await store.get_execution_tree(t["root"].id)
    check_tree(nodes, expected_tree(t, "root"))
    assert nodes[0].id == t["root"].id and nodes[0].parent_id is None
    for n in nodes:
        assert n.level == n.execution.execution_depth
        assert n.execution == await get_existing(store, n.id)


async def test_tree_from_an_inner_node_has_relative_levels(store: ExecutionStore) -> None:
    t = await build_tree(store)
    nodes = await store.get_execution_tree(t["a"].id)
    check_tree(nodes, expected_tree(t, "a"))
    assert [n.level for n in nodes] == [0, 1, 1, 2]
    assert nodes[0].id == t["a"].id
    leaf = await store.get_execution_tree(t["b1"].id)
    assert [(n.level, n.id) for n in leaf] == [(0, t["b1"].id)]


async def test_tree_of_unknown_execution_is_empty(store: ExecutionStore) -> None:
    assert await store.get_execution_tree("EX-unknown") == []


async def test_tree_sorted_by_level_then_id_with_many_siblings(store: ExecutionStore) -> None:
    root = await create_root(store)
    children = [await create_child(store, root) for _ in range(12)]
    for child in children[:3]:
        await create_child(store, child)
    nodes = await store.get_execution_tree(root.id)
    keys = [(n.level, n.id) for n in nodes]
    assert keys == sorted(keys)
    assert len(nodes) == 16


async def test_tree_is_bounded_by_max_nodes(store: ExecutionStore) -> None:
    t = await build_tree(store)
    full = expected_tree(t, "root")
    for max_nodes in range(1, len(full) + 2):
        nodes = await store.get_execution_tree(t["root"].id, max_nodes=max_nodes)
        assert len(nodes) == min(max_nodes, len(full)), max_nodes
        keys = [(n.level, n.id) for n in nodes]
        assert keys == sorted(keys)
        assert set(keys) <= set(full)
        # What is returned is the top of the tree: a node comes with its ancestors.
        ids = {n.id for n in nodes}
        for n in nodes:
            if n.level > 0:
                assert n.parent_id in ids


async def test_deep_chain_tree(store: ExecutionStore) -> None:
    chain = await create_chain(store, 30)
    nodes = await store.get_execution_tree(chain[0].id)
    assert [(n.level, n.id) for n in nodes] == [(i, e.id) for i, e in enumerate(chain)]
    nodes = await store.get_execution_tree(chain[10].id, max_nodes=5)
    assert [(n.level, n.id) for n in nodes] == [(i, e.id) for i, e in enumerate(chain[10:15])]
    listed = await store.get_root_executions(FLOW)
    assert [(r.levels, r.total_nested) for r in listed] == [(29, 29)]
