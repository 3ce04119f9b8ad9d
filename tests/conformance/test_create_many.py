"""`create_many`: a batch of new executions in one statement (PostgreSQL) or one transaction
(SQLite), all or nothing, each execution treated as `create` treats it."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any, cast

import pytest

from flowexec.errors import ExecutionExists, ExecutionNotFound, ValidationError
from flowexec.model import Execution
from flowexec.store.limits import MAX_CREATE_BATCH
from flowexec.store.protocol import ExecutionStore
from tests.tables import Tables

from .helpers import (
    WORKER,
    S,
    StoreFactory,
    build_child,
    build_root,
    build_world,
    create_root,
    get_existing,
    snapshot,
)
from .rejections import check_rejected
from .test_validation import CREATE_CASES


@pytest.fixture
def tables(store_url: str, unique_prefix: str) -> Tables:
    return Tables(store_url, unique_prefix)


async def raw_contents(tables: Tables) -> list[list[tuple[Any, ...]]]:
    """Every row of every table, every column as stored: "unchanged" means byte for byte."""
    return [
        await tables.query(f"SELECT * FROM {{p}}{table} ORDER BY 1")
        for table in ("executions", "execution_recovery")
    ]


def chain_of(length: int) -> list[Execution]:
    chain = [build_root()]
    while len(chain) < length:
        chain.append(build_child(chain[-1]))
    return chain


# ---------------------------------------------------------------- what it writes


async def test_creates_every_execution_runnable(store: ExecutionStore) -> None:
    roots = [build_root(integration={"n": n}) for n in range(50)]
    assert await store.create_many(roots) == {r.id for r in roots}
    for root in roots:
        got = await get_existing(store, root.id)
        assert got.status is S.CREATED and got.available_at is not None
        assert got.content_differences(root) == []
    claimed = await store.claim_next(WORKER, 60_000, limit=100)
    assert {c.execution_id for c in claimed} == {r.id for r in roots}


async def test_stores_what_create_stores(store: ExecutionStore, tables: Tables) -> None:
    one = build_root(options={"debug": True, "breakpoints": ["b"]},
                     integration={"k": [1, "ü", None], "nested": {"x": 1.5}},
                     external_events=[{"event_name": "paid", "payload": {"amount": 3}}])
    other = dataclasses.replace(one, id=one.id + "-b", root_execution_id=one.id + "-b")
    await store.create(one, start=False)
    assert await store.create_many([other], start=False) == {other.id}
    # every column but id and root_execution_id (the first and the fourth)
    rows = {str(r[0]): r for r in (await raw_contents(tables))[0]}
    created, batched = rows[one.id], rows[other.id]
    assert batched[1:3] + batched[4:] == created[1:3] + created[4:]


async def test_without_start_nothing_is_runnable_until_started(store: ExecutionStore) -> None:
    roots = [build_root() for _ in range(3)]
    await store.create_many(roots, start=False)
    for root in roots:
        assert (await get_existing(store, root.id)).available_at is None
    assert await store.claim_next(WORKER, 60_000, limit=10) == []
    assert await store.start_execution(roots[1].id)
    assert [c.execution_id for c in await store.claim_next(WORKER, 60_000, limit=10)] == [
        roots[1].id
    ]


async def test_an_empty_batch_writes_nothing(store: ExecutionStore, tables: Tables) -> None:
    before = await raw_contents(tables)
    assert await store.create_many([]) == set()
    assert await raw_contents(tables) == before


async def test_the_largest_batch(store: ExecutionStore) -> None:
    roots = [build_root() for _ in range(MAX_CREATE_BATCH)]
    assert len(await store.create_many(roots)) == MAX_CREATE_BATCH
    assert (await store.get_stats()).counts_by_status == {"created": MAX_CREATE_BATCH}


async def test_waiters_wake_up(store: ExecutionStore, other_store: ExecutionStore) -> None:
    await store.wait_for_work(0.05)  # let a listener, if any, get going
    waiter = asyncio.create_task(store.wait_for_work(30))
    await asyncio.sleep(0.2)
    await other_store.create_many([build_root() for _ in range(20)])
    await asyncio.wait_for(waiter, timeout=10)  # long before the 30 s timeout
    assert len(await store.claim_next(WORKER, 60_000, limit=50)) == 20


# ---------------------------------------------------------------- ids that exist already


async def test_the_same_batch_again_is_a_no_op(store: ExecutionStore, tables: Tables) -> None:
    batch = [*chain_of(3), build_root()]
    assert await store.create_many(batch) == {e.id for e in batch}
    before = await raw_contents(tables)
    assert await store.create_many(batch) == set()
    assert await store.create_many(list(reversed(batch))) == set()
    assert await raw_contents(tables) == before


async def test_stored_executions_are_left_and_the_rest_inserted(store: ExecutionStore) -> None:
    stored = await create_root(store)
    new = build_root()
    assert await store.create_many([stored, new]) == {new.id}
    assert await store.get(new.id) is not None


async def test_a_stored_id_with_other_content_rejects_the_whole_batch(
    store: ExecutionStore, tables: Tables
) -> None:
    stored = await create_root(store)
    news = [build_root() for _ in range(5)]
    before = await raw_contents(tables)
    changed = dataclasses.replace(stored, owner_id="someone-else")
    with pytest.raises(ExecutionExists) as raised:
        await store.create_many([*news, changed])
    assert raised.value.execution_id == stored.id
    assert raised.value.differences == ["owner_id"]
    assert await raw_contents(tables) == before


async def test_an_id_listed_twice(store: ExecutionStore, tables: Tables) -> None:
    root = build_root()
    later = dataclasses.replace(root, created_at=root.created_at.replace(year=2030))
    assert await store.create_many([root, later, root]) == {root.id}
    assert (await get_existing(store, root.id)).created_at == root.created_at

    other = build_root()
    before = await raw_contents(tables)
    with pytest.raises(ValidationError, match="twice, with different integration"):
        await store.create_many([build_root(), other, dataclasses.replace(other, integration={})])
    assert await raw_contents(tables) == before


# ---------------------------------------------------------------- trees


async def test_parents_in_the_batch_in_any_order(store: ExecutionStore) -> None:
    chain = chain_of(5)
    siblings = [build_child(chain[1]) for _ in range(3)]
    batch = [*reversed(chain), *siblings]
    random.Random(7).shuffle(batch)
    assert await store.create_many(batch) == {e.id for e in batch}
    tree = await store.get_execution_tree(chain[0].id)
    assert {n.id: n.level for n in tree} == {
        **{e.id: n for n, e in enumerate(chain)}, **{s.id: 2 for s in siblings}
    }


async def test_children_of_stored_parents(store: ExecutionStore) -> None:
    parent = await create_root(store)
    child = build_child(parent)
    grandchild = build_child(child)
    assert await store.create_many([grandchild, child]) == {child.id, grandchild.id}
    assert [c.id for c in await store.get_child_executions(child.id)] == [grandchild.id]


async def test_a_missing_parent_rejects_the_whole_batch(
    store: ExecutionStore, tables: Tables
) -> None:
    absent = build_root()
    orphan = build_child(absent)
    before = await raw_contents(tables)
    with pytest.raises(ExecutionNotFound) as raised:
        await store.create_many([build_root(), *chain_of(3), orphan, build_child(orphan)])
    assert raised.value.execution_id == absent.id
    assert await raw_contents(tables) == before


@pytest.mark.parametrize(
    "change", [{"root_execution_id": "EX-elsewhere"}, {"execution_depth": 2}]
)
async def test_a_child_out_of_place_under_a_parent_in_the_batch(
    store: ExecutionStore, tables: Tables, change: dict[str, Any]
) -> None:
    root = build_root()
    child = dataclasses.replace(build_child(root), **change)
    before = await raw_contents(tables)
    with pytest.raises(ValidationError, match=f"parent {root.id!r}|child of {root.id!r}"):
        await store.create_many([root, child])
    assert await raw_contents(tables) == before


async def test_a_batch_deeper_than_the_store_allows(store_factory: StoreFactory) -> None:
    store = await store_factory(max_depth=2)
    chain = chain_of(4)
    with pytest.raises(ValidationError, match="execution_depth"):
        await store.create_many(chain)
    assert await store.get(chain[0].id) is None


# ---------------------------------------------------------------- bad input


class BatchBehindAGoodOne:
    """A store whose `create` sends the execution in a batch after a valid new root, so
    that the table of bad creations checks that one bad item rejects the whole batch."""

    def __init__(self, store: ExecutionStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def create(self, execution: Execution, *, start: bool = True) -> None:
        await self._store.create_many([build_root(), execution], start=start)


async def test_every_bad_item_create_rejects_rejects_the_batch(
    store: ExecutionStore, tables: Tables
) -> None:
    world = await build_world(store)
    before = await raw_contents(tables)
    cases = [(label, call) for label, call in CREATE_CASES if not label.startswith("fence")]
    await check_rejected(cast(ExecutionStore, BatchBehindAGoodOne(store)), world, cases)
    assert await raw_contents(tables) == before


@pytest.mark.parametrize(
    "batch",
    [
        None,
        "EX1",
        b"EX1",
        42,
        {"id": "EX1"},
        [{"id": "EX1", "flow_id": "f"}],
        [None],
        "too many",
    ],
    ids=["None", "str", "bytes", "int", "dict", "list of dicts", "list of None", "too many"],
)
async def test_bad_batches(store: ExecutionStore, tables: Tables, batch: object) -> None:
    if batch == "too many":
        batch = [build_root() for _ in range(MAX_CREATE_BATCH + 1)]
    world = await build_world(store)
    before, seen = await raw_contents(tables), await snapshot(store, world.ids)
    with pytest.raises(ValidationError) as raised:
        await store.create_many(batch)  # type: ignore[arg-type]
    assert str(raised.value)
    assert await raw_contents(tables) == before
    assert await snapshot(store, world.ids) == seen


async def test_a_single_execution_is_not_a_batch(store: ExecutionStore) -> None:
    with pytest.raises(ValidationError, match="sequence of Execution"):
        await store.create_many(build_root())  # type: ignore[arg-type]


# ---------------------------------------------------------------- races


async def test_overlapping_batches_at_once_create_each_execution_once(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    stores = [store, *await asyncio.gather(*(store_factory() for _ in range(3)))]
    chains = [chain_of(3) for _ in range(40)]
    rng = random.Random(15)
    batches = [[e for chain in rng.sample(chains, 25) for e in chain] for _ in range(8)]
    for batch in batches:
        rng.shuffle(batch)
    results = await asyncio.gather(
        *(stores[n % len(stores)].create_many(b) for n, b in enumerate(batches))
    )
    created = [i for r in results for i in r]
    assert len(created) == len(set(created)), "an execution was created twice"
    assert set(created) == {e.id for b in batches for e in b}
    stats = await store.get_stats()
    assert stats.counts_by_status == {"created": len(set(created))}


async def test_conflicting_batches_at_once_one_wins_whole(
    store: ExecutionStore, other_store: ExecutionStore, tables: Tables
) -> None:
    shared = build_root()
    first = [*(build_root() for _ in range(30)), shared]
    second = [dataclasses.replace(shared, owner_id="rival"), *(build_root() for _ in range(30))]
    outcomes = await asyncio.gather(
        store.create_many(first), other_store.create_many(second), return_exceptions=True
    )
    failed = [n for n, o in enumerate(outcomes) if isinstance(o, BaseException)]
    assert len(failed) == 1, outcomes
    assert isinstance(outcomes[failed[0]], ExecutionExists)
    winner, loser = (second, first) if failed == [0] else (first, second)
    stored = {str(r[0]) for r in (await raw_contents(tables))[0]}
    assert stored == {e.id for e in winner}
    assert not stored & ({e.id for e in loser} - {shared.id})
