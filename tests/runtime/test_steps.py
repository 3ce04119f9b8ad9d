"""Durable steps in a worker (docs/architecture.md §11): a node that completed is replayed by
later attempts, not run again; `checkpoint=False` runs it again; node ids are unique; a result
that is not JSON fails the node before anything is recorded; nodes that complete together are
recorded in one round trip."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from flowexec import App, ExecutionStatus, ExecutionTimeout, FlowContext
from flowexec.cli.events_command import read_progress
from flowexec.model import EventBatch
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, running_worker, wait_until


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
    progress = await read_progress(store, execution_id)  # `flowexec show` counts it as done
    assert progress.summary() == "progress: 3 nodes done; running now: none"


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


async def test_a_long_sleep_gives_the_slot_to_other_work_and_resumes_after_it(
    store: ExecutionStore,
) -> None:
    app = App()
    calls = Calls()

    @app.flow("nap")
    async def nap(ctx: FlowContext) -> str:
        await ctx.node("before", calls, "before")
        await ctx.sleep(2)
        await ctx.node("after", calls, "after")
        return "rested"

    @app.flow("quick")
    async def quick(ctx: FlowContext) -> str:
        await ctx.sleep(0.01)  # a short sleep just sleeps
        return "done"

    client = await app.client(store)
    async with running_worker(app, store, concurrency=1):
        napping = await client.create("nap", owner_id=OWNER)

        async def asleep_without_a_claim() -> bool:
            execution = await client.get(napping)
            return (
                "sleep#1" in await store.get_checkpoints(napping)
                and execution.status is ExecutionStatus.CREATED
                and execution.processing_worker_id is None
            )

        await wait_until(asleep_without_a_claim, what="the sleep to give the claim back")
        quick_id = await client.create("quick", owner_id=OWNER)
        quick_done = await client.wait(quick_id, timeout=10)
        still_asleep = await client.get(napping)
        done = await client.wait(napping, timeout=20)

    assert quick_done.status is ExecutionStatus.COMPLETED
    assert still_asleep.status is ExecutionStatus.CREATED, "the quick one ran during the sleep"
    assert done.status is ExecutionStatus.COMPLETED and done.result == "rested"
    assert done.failure_count == 0
    assert calls.counts == {"before": 1, "after": 1}
    [slept] = await store.get_events(napping, types=["flow:suspended", "flow:retrying"])
    assert slept.type == "flow:suspended" and slept.data["message"].startswith("sleeping until")
    assert isinstance(slept.data["delay_ms"], int) and slept.data["delay_ms"] > 1000
    assert [e.data["node_id"] for e in await store.get_events(napping, types=["node:replayed"])
            ] == ["before", "sleep#1"]
    [quick_ran] = await store.get_events(quick_id, types=["flow:completed"])
    [woke] = await store.get_events(napping, types=["flow:completed"])
    assert quick_ran.at < woke.at


async def test_waiting_for_children_returns_their_executions_and_client_waits_for_trees(
    store: ExecutionStore,
) -> None:
    app = App()

    @app.flow("parent")
    async def parent(ctx: FlowContext) -> list[Any]:
        ids = [await ctx.emit("square", {"n": n}, flow_id="square") for n in range(5)]
        kids = await ctx.wait_for_children(ids)
        return [[k.id == i, k.status.value, k.result] for i, k in zip(ids, kids, strict=True)]

    @app.flow("square")
    async def square(ctx: FlowContext) -> int:
        assert ctx.event is not None and isinstance(ctx.event.payload, dict)
        n = int(ctx.event.payload["n"])
        await ctx.emit("leaf", None, flow_id="leaf", key=f"leaf-{n}")  # a grandchild
        return n * n

    @app.flow("leaf")
    async def leaf(ctx: FlowContext) -> None:
        await asyncio.sleep(0.3)

    client = await app.client(store)
    async with running_worker(app, store, concurrency=3):
        execution_id = await client.create("parent", owner_id=OWNER)
        done = await client.wait(execution_id, timeout=30, tree=True)
        tree = await store.get_execution_tree(execution_id)
    assert done.id == execution_id and done.status is ExecutionStatus.COMPLETED
    assert done.result == [[True, "completed", n * n] for n in range(5)]
    assert len(tree) == 11
    assert {n.execution.status for n in tree} == {ExecutionStatus.COMPLETED}


async def test_waiting_for_children_checks_its_input_and_times_out(
    store: ExecutionStore,
) -> None:
    app = App()
    seen: dict[str, str] = {}

    @app.flow("waiter", max_retries=0)
    async def waiter(ctx: FlowContext) -> None:
        for name, bad in (("str", "not-a-list"), ("missing", ["no-such-child"])):
            try:
                await ctx.wait_for_children(bad)  # type: ignore[arg-type]
            except Exception as exc:
                seen[name] = type(exc).__name__
        for name, seconds in (("nan", float("nan")), ("negative", -1.0), ("eon", 1e15)):
            try:
                await ctx.sleep(seconds)
            except Exception as exc:
                seen[name] = type(exc).__name__
        child = await ctx.emit("slow", None, flow_id="slow")
        await ctx.wait_for_children([child], timeout=0.3)

    @app.flow("slow")
    async def slow(ctx: FlowContext) -> None:
        await asyncio.sleep(60)

    client = await app.client(store)
    async with running_worker(app, store, concurrency=2, shutdown_grace_s=0.1):
        execution_id = await client.create("waiter", owner_id=OWNER)
        done = await client.wait(execution_id, timeout=20)
        with pytest.raises(ExecutionTimeout):
            await client.wait(execution_id, timeout=0.1, tree=True)
    assert seen == {
        "str": "ValidationError", "missing": "ExecutionNotFound", "nan": "ValidationError",
        "negative": "ValidationError", "eon": "ValidationError",
    }
    assert done.status is ExecutionStatus.FAILED
    assert done.error_message is not None and "is still" in done.error_message
