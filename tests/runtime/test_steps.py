"""Durable steps in a worker (docs/architecture.md §11): a node that completed is replayed by
later attempts, not run again; `checkpoint=False` runs it again; node ids are unique; a result
that is not JSON fails the node before anything is recorded; nodes that complete together are
recorded in one round trip."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from flowexec import App, ExecutionStatus, FlowContext
from flowexec.model import EventBatch
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, running_worker


class Calls:
    """Counts the calls of each node's function; fails the nodes named in `fail_once` on
    their first call."""

    def __init__(self, *fail_once: str) -> None:
        self.counts: Counter[str] = Counter()
        self.fail_once = set(fail_once)

    def __call__(self, name: str) -> dict[str, Any]:
        self.counts[name] += 1
        if name in self.fail_once and self.counts[name] == 1:
            raise ConnectionError(f"{name} failed once")
        return {"node": name, "call": self.counts[name]}


async def run_to_end(app: App, store: ExecutionStore, flow_id: str) -> tuple[str, Any]:
    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create(flow_id, owner_id=OWNER)
        done = await client.wait(execution_id, timeout=20)
    return execution_id, done


async def test_a_retry_replays_completed_nodes_and_runs_the_failed_one_again(
    store: ExecutionStore,
) -> None:
    app = App()
    calls = Calls("charge")

    @app.flow("order", max_retries=2)
    async def order(ctx: FlowContext) -> list[Any]:
        reserved = await ctx.node("reserve", calls, "reserve")
        charged = await ctx.node("charge", calls, "charge")
        shipped = await ctx.node("ship", calls, "ship")
        return [reserved, charged, shipped]

    execution_id, done = await run_to_end(app, store, "order")
    assert done.status is ExecutionStatus.COMPLETED and done.failure_count == 1
    assert calls.counts == {"reserve": 1, "charge": 2, "ship": 1}
    assert done.result == [
        {"node": "reserve", "call": 1}, {"node": "charge", "call": 2}, {"node": "ship", "call": 1},
    ]
    assert await store.get_checkpoints(execution_id) == {
        "reserve": {"node": "reserve", "call": 1},
        "charge": {"node": "charge", "call": 2},
        "ship": {"node": "ship", "call": 1},
    }
    replayed = await store.get_events(execution_id, types=["node:replayed"])
    assert [(e.data, e.attempt) for e in replayed] == [({"node_id": "reserve"}, 2)]


async def test_checkpoint_false_runs_nodes_again(store: ExecutionStore) -> None:
    app = App()
    calls = Calls("again")

    @app.flow("mixed", max_retries=1)
    async def mixed(ctx: FlowContext) -> None:
        await ctx.node("kept", calls, "kept")
        await ctx.node("cheap", calls, "cheap", checkpoint=False)
        await ctx.node("again", calls, "again")

    @app.flow("at-least-once", max_retries=1, checkpoint=False)
    async def at_least_once(ctx: FlowContext) -> None:
        await ctx.node("plain", calls, "plain")
        await ctx.node("kept-anyway", calls, "kept-anyway", checkpoint=True)
        await ctx.node("again-2", calls, "again-2")

    calls.fail_once.add("again-2")
    mixed_id, done = await run_to_end(app, store, "mixed")
    assert done.status is ExecutionStatus.COMPLETED
    plain_id, done = await run_to_end(app, store, "at-least-once")
    assert done.status is ExecutionStatus.COMPLETED
    assert calls.counts == {
        "kept": 1, "cheap": 2, "again": 2, "plain": 2, "kept-anyway": 1, "again-2": 2,
    }
    assert set(await store.get_checkpoints(mixed_id)) == {"kept", "again"}
    assert set(await store.get_checkpoints(plain_id)) == {"kept-anyway"}


async def test_a_node_id_used_twice_fails_the_flow_with_a_clear_error(
    store: ExecutionStore,
) -> None:
    app = App()

    @app.flow("loop", max_retries=3)
    async def loop(ctx: FlowContext) -> None:
        for _ in range(2):
            await ctx.node("fetch", lambda: 1)

    _, done = await run_to_end(app, store, "loop")
    assert done.status is ExecutionStatus.FAILED and done.failure_count == 0, "no retry"
    assert done.error_message is not None
    assert "node id 'fetch' is used twice" in done.error_message
    assert "fetch-{i}" in done.error_message


async def test_a_result_that_is_not_json_fails_its_node_and_nothing_is_recorded(
    store: ExecutionStore,
) -> None:
    app = App()

    @app.flow("sets")
    async def sets(ctx: FlowContext) -> None:
        await ctx.node("ok", lambda: [1])
        await ctx.node("a-set", lambda: {1, 2})

    execution_id, done = await run_to_end(app, store, "sets")
    assert done.status is ExecutionStatus.FAILED
    assert done.error_node_id == "a-set"
    assert done.error_message is not None
    assert "the result of node 'a-set'" in done.error_message
    assert await store.get_checkpoints(execution_id) == {"ok": [1]}
    [failed] = await store.get_events(execution_id, types=["node:failed"])
    assert failed.data["node_id"] == "a-set" and failed.data["type"] == "ValidationError"


async def test_nodes_that_complete_together_are_recorded_in_one_round_trip(
    store: ExecutionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = App()
    recorded_per_append: list[int] = []
    append = store.append_events

    async def counting_append(worker_id: str, batches: list[EventBatch]) -> set[str]:
        recorded_per_append.append(sum(len(b.checkpoints) for b in batches))
        return await append(worker_id, batches)

    monkeypatch.setattr(store, "append_events", counting_append)
    release = asyncio.Event()

    async def step(n: int) -> int:
        await release.wait()
        return n

    @app.flow("fan")
    async def fan(ctx: FlowContext) -> int:
        asyncio.get_running_loop().call_later(0.2, release.set)
        values = await asyncio.gather(*(ctx.node(f"step-{n}", step, n) for n in range(200)))
        return sum(values)

    execution_id, done = await run_to_end(app, store, "fan")
    assert done.status is ExecutionStatus.COMPLETED and done.result == sum(range(200))
    assert len(await store.get_checkpoints(execution_id)) == 200
    with_results = [n for n in recorded_per_append if n]
    assert sum(with_results) == 200
    assert len(with_results) <= 3, with_results
