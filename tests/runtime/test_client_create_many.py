"""`Client.create_many`: many root executions of one flow in one store batch, ids in order."""

from __future__ import annotations

from typing import Any

import pytest

from flowexec import App, FlowContext, FlowEvent, FlowNotFound, ValidationError
from flowexec.runtime.client import InvalidItem
from flowexec.store.limits import MAX_CREATE_BATCH
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, count_executions, running_worker, wait_until

FLOW = "bulk.echo"


def make_app() -> App:
    app = App()

    @app.flow(FLOW)
    async def echo(ctx: FlowContext) -> dict[str, Any]:
        event = ctx.event
        return {"integration": ctx.integration, "event": None if event is None else event.name}

    return app


async def test_creates_each_item_and_returns_the_ids_in_order(store: ExecutionStore) -> None:
    client = await make_app().client(store)
    items: list[dict[str, Any]] = [
        {"owner_id": "alice", "integration": {"n": 0}},
        {"owner_id": "bob", "options": {"debug": True}, "events": [FlowEvent("paid", 3)]},
        {"owner_id": "carol", "events": [{"event_name": "noted"}]},
    ]
    ids = await client.create_many(FLOW, items, start=False)
    assert len(set(ids)) == 3
    created = [await client.get(i) for i in ids]
    assert [e.owner_id for e in created] == ["alice", "bob", "carol"]
    assert [e.flow_id for e in created] == [FLOW] * 3
    assert all(e.available_at is None and e.parent_execution_id is None for e in created)
    assert created[0].integration == {"n": 0}
    assert created[1].options is not None and created[1].options.debug
    assert created[1].external_events == [{"event_name": "paid", "payload": 3}]
    assert created[2].external_events == [{"event_name": "noted", "payload": None}]


async def test_a_worker_runs_what_create_many_queued(store: ExecutionStore) -> None:
    app = make_app()
    client = await app.client(store)
    ids = await client.create_many(
        FLOW, [{"owner_id": OWNER, "integration": {"n": n}} for n in range(30)]
    )
    async with running_worker(app, store, concurrency=10):

        async def all_done() -> bool:
            stats = await store.get_stats()
            return stats.counts_by_status.get("completed", 0) == 30

        await wait_until(all_done, what="30 completed executions")
    results = [await client.result(i) for i in ids]
    assert results == [{"integration": {"n": n}, "event": None} for n in range(30)]


@pytest.mark.parametrize(
    "item",
    [
        {"owner_id": ""},
        {"owner_id": OWNER, "options": {"retries": 3}},
        {"owner_id": OWNER, "integration": [1, 2]},
        {"owner_id": OWNER, "integration": {"n": float("nan")}},
        {"owner_id": OWNER, "events": [{"payload": 1}]},
        {"owner_id": OWNER, "events": {"event_name": "e"}},
    ],
)
async def test_a_bad_item_is_refused_as_create_refuses_it(
    store: ExecutionStore, item: dict[str, Any]
) -> None:
    client = await make_app().client(store)
    with pytest.raises(ValidationError) as by_create:
        await client.create(FLOW, **item)
    with pytest.raises(InvalidItem) as by_batch:
        await client.create_many(FLOW, [{"owner_id": OWNER}, item, {"owner_id": OWNER}])
    assert by_batch.value.index == 1
    assert by_batch.value.reason == str(by_create.value)
    assert str(by_batch.value) == f"items[1]: {by_create.value}"
    assert await count_executions(store) == 0


@pytest.mark.parametrize(
    ("items", "error", "match"),
    [
        ([{"owner_id": OWNER}, {"integration": {}}], InvalidItem, r"items\[1\]: .*owner_id"),
        ([{"owner_id": OWNER, "owner": "x"}], InvalidItem, r"unknown keys \['owner'\]"),
        ([{"owner_id": OWNER}, "alice"], InvalidItem, "an item is a dict, not str"),
        ({"owner_id": OWNER}, ValidationError, "items must be a sequence"),
        ("alice", ValidationError, "items must be a sequence"),
        ([{"owner_id": OWNER}] * (MAX_CREATE_BATCH + 1), ValidationError, "at most 10000"),
    ],
)
async def test_bad_batches_write_nothing(
    store: ExecutionStore, items: Any, error: type[Exception], match: str
) -> None:
    client = await make_app().client(store)
    with pytest.raises(error, match=match):
        await client.create_many(FLOW, items)
    assert await count_executions(store) == 0


async def test_an_unknown_flow_is_refused(store: ExecutionStore) -> None:
    client = await make_app().client(store)
    with pytest.raises(FlowNotFound):
        await client.create_many("unknown", [{"owner_id": OWNER}])
    assert await count_executions(store) == 0


async def test_no_items_create_nothing(store: ExecutionStore) -> None:
    client = await make_app().client(store)
    assert await client.create_many(FLOW, []) == []
