"""Bad input (docs/architecture.md §8): a typed error with a clear message, and the database
unchanged.

Each test runs a table of bad calls against a populated store (`build_world`), checks that every
call raises `ValidationError`, then reads the whole world back to prove nothing was written.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from flowexec.errors import ValidationError
from flowexec.model import (
    DEFAULT_MAX_DEPTH,
    MAX_JSON_BYTES,
    MAX_TREE_NODES,
    ExecutionOptions,
    UpdateExecutionStatusParams,
    new_execution,
)
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    FLOW,
    WORKER,
    S,
    StoreFactory,
    World,
    build_child,
    build_root,
    build_world,
    create_chain,
    create_root,
)
from .rejections import (
    BAD_IDS,
    BAD_LIMITS,
    LONG_ID,
    NAIVE,
    Call,
    check_rejected,
    each,
)

# ---------------------------------------------------------------- create


def _replaced(**changes: object) -> Call:
    async def call(store: ExecutionStore, world: World) -> None:
        await store.create(dataclasses.replace(build_root(), **changes))

    return call


def _child_replaced(**changes: object) -> Call:
    async def call(store: ExecutionStore, world: World) -> None:
        await store.create(dataclasses.replace(build_child(world.root), **changes))

    return call


CREATE_CASES: list[tuple[str, Call]] = [
    ("not an execution (dict)", lambda s, w: s.create({"id": "EX1", "flow_id": FLOW})),
    ("not an execution (None)", lambda s, w: s.create(None)),
    *each("id", BAD_IDS, lambda v: _replaced(id=v, root_execution_id=v)),
    *each("flow_id", BAD_IDS, lambda v: _replaced(flow_id=v)),
    *each("owner_id", BAD_IDS, lambda v: _replaced(owner_id=v)),
    ("status running", _replaced(status=S.RUNNING)),
    ("status completed", _replaced(status=S.COMPLETED)),
    ("unknown status", _replaced(status="bogus")),
    ("status not a string", _replaced(status=3)),
    ("options not a dict", _replaced(options="debug")),
    ("options unknown key", _replaced(options={"debugger": True})),
    ("options debug not bool", _replaced(options={"debug": "yes"})),
    ("options empty breakpoint", _replaced(options=ExecutionOptions(breakpoints=[""]))),
    ("options negative timeout", _replaced(options={"execution": {"node_timeout_ms": -5}})),
    ("options zero concurrency", _replaced(options={"execution": {"max_concurrency": 0}})),
    ("options set in list", _replaced(options={"breakpoints": {"a", "b"}})),
    ("integration with a set", _replaced(integration={"tags": {1, 2}})),
    ("integration with NaN", _replaced(integration={"x": float("nan")})),
    ("integration with inf", _replaced(integration={"x": float("inf")})),
    ("integration with a tuple", _replaced(integration={"t": (1, 2)})),
    ("integration with int keys", _replaced(integration={1: "one"})),
    ("integration with an object", _replaced(integration={"o": object()})),
    ("integration with bytes", _replaced(integration={"b": b"raw"})),
    ("integration with datetime", _replaced(integration={"d": datetime.now(UTC)})),
    ("integration not a dict", _replaced(integration=[1, 2])),
    ("integration too large", _replaced(integration={"x": "a" * MAX_JSON_BYTES})),
    ("external_events not a list", _replaced(external_events="push")),
    ("external_events of non-dicts", _replaced(external_events=[1, 2])),
    ("external_events non-JSON", _replaced(external_events=[{"payload": {1, 2}}])),
    ("root with depth 1", _replaced(execution_depth=1)),
    ("negative depth", _replaced(execution_depth=-1)),
    ("depth not an int", _replaced(execution_depth="0")),
    ("root in another tree", _replaced(root_execution_id="EX-other")),
    ("failure_count set", _replaced(failure_count=3)),
    ("started_at set", _replaced(started_at=datetime.now(UTC))),
    ("completed_at set", _replaced(completed_at=datetime.now(UTC))),
    ("processing_worker_id set", _replaced(processing_worker_id=WORKER)),
    ("result set", _replaced(result={"done": True})),
    ("naive created_at", _replaced(created_at=NAIVE)),
    ("created_at not a datetime", _replaced(created_at="2024-01-01T00:00:00Z")),
    ("child depth 2 under a root", _child_replaced(execution_depth=2)),
    ("child depth 0", _child_replaced(execution_depth=0)),
    (
        "child in another tree",
        lambda s, w: s.create(
            dataclasses.replace(build_child(w.root), root_execution_id=w.queued.id)
        ),
    ),
    (
        "child's root is not its parent's",
        lambda s, w: s.create(
            dataclasses.replace(build_child(w.child), root_execution_id=w.child.id)
        ),
    ),
    (
        "own parent",
        lambda s, w: s.create(
            dataclasses.replace(build_child(w.root), id="EX-self", parent_execution_id="EX-self")
        ),
    ),
    *each(
        "fence",
        [("w",), ("", 1), (WORKER, 0), (WORKER, -1), (WORKER, "1"), "w:1"],
        lambda v: lambda s, w: s.create(build_child(w.root), fence=v),
    ),
]


async def test_create_rejects_bad_executions(store: ExecutionStore) -> None:
    world = await build_world(store)
    await check_rejected(store, world, CREATE_CASES)


async def test_create_rejects_depth_over_the_limit(store: ExecutionStore) -> None:
    assert store.max_depth == DEFAULT_MAX_DEPTH == 100
    chain = await create_chain(store, 101)  # depths 0..100: the limit is 100
    assert chain[-1].execution_depth == 100
    assert (await store.get(chain[-1].id)) is not None
    too_deep = new_execution(FLOW, "owner-1", parent=chain[-1], max_depth=1000)
    assert too_deep.execution_depth == 101
    with pytest.raises(ValidationError):
        await store.create(too_deep)
    assert await store.get(too_deep.id) is None
    assert await store.get_child_executions(chain[-1].id) == []


async def test_create_respects_a_configured_max_depth(store_factory: StoreFactory) -> None:
    store = await store_factory(max_depth=2)
    assert store.max_depth == 2
    chain = await create_chain(store, 3)
    too_deep = new_execution(FLOW, "owner-1", parent=chain[-1], max_depth=1000)
    with pytest.raises(ValidationError):
        await store.create(too_deep)
    assert await store.get(too_deep.id) is None
    assert [n.id for n in await store.get_execution_tree(chain[0].id)] == [e.id for e in chain]


async def test_create_rejects_a_child_whose_parent_is_in_another_tree(
    store: ExecutionStore,
) -> None:
    tree_a = await create_root(store)
    tree_b = await create_root(store)
    # Claims to be in tree A, names a parent in tree B.
    stray = dataclasses.replace(build_child(tree_b), root_execution_id=tree_a.id)
    with pytest.raises(ValidationError):
        await store.create(stray)
    assert await store.get(stray.id) is None
    assert await store.get_child_executions(tree_b.id) == []
    assert [n.id for n in await store.get_execution_tree(tree_a.id)] == [tree_a.id]


# ---------------------------------------------------------------- reads by id

ID_METHODS = [
    "get",
    "delete",
    "start_execution",
    "get_child_executions",
    "get_execution_tree",
    "get_claim_for_execution",
    "get_recovery_history",
    "get_checkpoints",
]


def _by_id(method: str, value: object) -> Call:
    async def call(store: ExecutionStore, world: World) -> object:
        return await getattr(store, method)(value)

    return call


async def test_id_arguments_are_validated(store: ExecutionStore) -> None:
    world = await build_world(store)
    cases = [case for m in ID_METHODS for case in each(m, BAD_IDS, lambda v, m=m: _by_id(m, v))]
    cases += [
        *each(
            "get_statuses",
            [[""], [LONG_ID], [123], [None], None, 5],
            lambda v: lambda s, w: s.get_statuses(v),
        ),
        *each(
            "get_execution_tree max_nodes",
            [0, -1, MAX_TREE_NODES + 1, "10", 1.5, True],
            lambda v: lambda s, w: s.get_execution_tree(w.root.id, max_nodes=v),
        ),
    ]
    await check_rejected(store, world, cases)


# ---------------------------------------------------------------- status updates


def _update(**fields: object) -> Call:
    async def call(store: ExecutionStore, world: World) -> object:
        values: dict[str, object] = {"execution_id": world.root.id, "status": S.PAUSED}
        values.update(fields)
        return await store.update_execution_status(UpdateExecutionStatusParams(**values))

    return call


async def test_update_execution_status_validates(store: ExecutionStore) -> None:
    world = await build_world(store)
    lease = world.lease
    cases: list[tuple[str, Call]] = [
        (
            "params as a dict",
            lambda s, w: s.update_execution_status({"execution_id": w.root.id, "status": "paused"}),
        ),
        ("params None", lambda s, w: s.update_execution_status(None)),
        *each("execution_id", BAD_IDS, lambda v: _update(execution_id=v)),
        *each("status", ["bogus", "", "PAUSED ", 3, None], lambda v: _update(status=v)),
        ("worker_id without epoch", _update(worker_id=lease.worker_id)),
        ("epoch without worker_id", _update(epoch=lease.epoch)),
        *each(
            "epoch",
            [0, -1, "1", 1.5, True, 1 << 63],
            lambda v: _update(worker_id=lease.worker_id, epoch=v),
        ),
        *each("worker_id", ["", LONG_ID, 7], lambda v: _update(worker_id=v, epoch=lease.epoch)),
        ("naive started_at", _update(status=S.RUNNING, started_at=NAIVE)),
        ("started_at as text", _update(status=S.RUNNING, started_at="2024-01-01")),
        ("naive completed_at", _update(status=S.COMPLETED, completed_at=NAIVE)),
        ("error_message not text", _update(status=S.FAILED, error_message=500)),
        ("error_node_id not text", _update(status=S.FAILED, error_node_id=["n"])),
        ("result not JSON", _update(status=S.COMPLETED, result={"s": {1}})),
        ("result NaN", _update(status=S.COMPLETED, result=float("nan"))),
        *each("expected_status", ["bogus", "", 7], lambda v: _update(expected_status=v)),
    ]
    await check_rejected(store, world, cases)


# ---------------------------------------------------------------- listing


async def test_root_listing_validates(store: ExecutionStore) -> None:
    world = await build_world(store)
    cases: list[tuple[str, Call]] = [
        *each("flow_id", BAD_IDS, lambda v: lambda s, w: s.get_root_executions(v)),
        *each("limit", BAD_LIMITS, lambda v: lambda s, w: s.get_root_executions(FLOW, v)),
        *each(
            "after",
            [NAIVE, "2024-01-01T00:00:00Z", 1_700_000_000, object()],
            lambda v: lambda s, w: s.get_root_executions(FLOW, 10, v),
        ),
        *each(
            "owner_id",
            ["", LONG_ID, 5],
            lambda v: lambda s, w: s.get_root_executions(FLOW, owner_id=v),
        ),
    ]
    await check_rejected(store, world, cases)


