"""Children: emit spawns fenced child executions; re-runs do not duplicate them; bad emits."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from flowexec import App, ExecutionStatus, FlowContext
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, count_executions, running_worker

StoreFactory = Callable[..., Awaitable[ExecutionStore]]


async def test_emit_spawns_a_child_that_inherits_and_runs(store: ExecutionStore) -> None:
    app = App()
    seen: dict[str, Any] = {}

    @app.flow("order")
    async def order(ctx: FlowContext) -> str | None:
        if ctx.event is None:
            return await ctx.emit("item.added", {"sku": "A-1", "qty": 2})
        seen.update(event=ctx.event, integration=ctx.integration, options=ctx.options)
        return None

    client = await app.client(store)
    options = {"execution": {"node_timeout_ms": 9000}}
    async with running_worker(app, store):
        root_id = await client.create(
            "order", owner_id=OWNER, options=options, integration={"shop": "s1"}
        )
        root = await client.wait(root_id, timeout=10)
        child_id = root.result
        assert isinstance(child_id, str)
        child = await client.wait(child_id, timeout=10)

    assert child.status is ExecutionStatus.COMPLETED
    assert (child.parent_execution_id, child.root_execution_id, child.execution_depth) == (
        root_id, root_id, 1
    )
    assert child.owner_id == OWNER and child.flow_id == "order"
    assert child.options == root.options and child.integration == {"shop": "s1"}
    assert child.external_events == [{"event_name": "item.added", "payload": {"sku": "A-1",
                                                                             "qty": 2}}]
    assert seen["event"].name == "item.added"
    assert seen["event"].payload == {"sku": "A-1", "qty": 2}
    assert seen["integration"] == {"shop": "s1"}
    tree = await store.get_execution_tree(root_id)
    assert [(n.id, n.level) for n in tree] == [(root_id, 0), (child_id, 1)]


async def test_a_rerun_does_not_duplicate_the_children_it_emitted(store: ExecutionStore) -> None:
    app = App()
    emitted: list[list[str]] = []

    async def emit_all(ctx: FlowContext) -> list[str]:
        names = ["a", "b", "b", "c"]  # "b" twice on purpose: two children, same content
        random.shuffle(names)  # concurrent nodes finish in any order
        return list(await asyncio.gather(*(ctx.emit("tick", {"n": n}) for n in names)))

    @app.flow("parent", max_retries=2)
    async def parent(ctx: FlowContext) -> None:
        if ctx.event is not None:
            return
        emitted.append(sorted(await emit_all(ctx)))
        await ctx.emit("keyed", {"order": 42}, key="the-one")
        if ctx.attempt == 1:
            raise RuntimeError("crash after emitting")

    client = await app.client(store)
    async with running_worker(app, store):
        root_id = await client.create("parent", owner_id=OWNER)
        root = await client.wait(root_id, timeout=10)
        children = await store.get_child_executions(root_id)
        for child in children:
            await client.wait(child.id, timeout=10)

    assert root.status is ExecutionStatus.COMPLETED and root.failure_count == 1
    assert len(emitted) == 2 and emitted[0] == emitted[1], "the same ids on both runs"
    assert len(set(emitted[0])) == 4
    assert len(children) == 5
    payloads = sorted(str(c.external_events) for c in children)
    assert sum("'b'" in p for p in payloads) == 2
    keyed = [c for c in children if c.external_events and
             c.external_events[0]["event_name"] == "keyed"]
    assert [c.external_events for c in keyed] == [[{"event_name": "keyed",
                                                    "payload": {"order": 42}}]]


async def test_emit_may_target_another_flow(store: ExecutionStore) -> None:
    app = App()

    @app.flow("producer")
    async def producer(ctx: FlowContext) -> str:
        return await ctx.emit("job", [1, 2, 3], flow_id="consumer")

    @app.flow("consumer")
    async def consumer(ctx: FlowContext) -> int:
        assert ctx.event is not None
        return sum(ctx.event.payload)

    client = await app.client(store)
    async with running_worker(app, store):
        root_id = await client.create("producer", owner_id=OWNER)
        child_id = (await client.wait(root_id, timeout=10)).result
        child = await client.wait(child_id, timeout=10)
    assert (child.flow_id, child.result, child.parent_execution_id) == ("consumer", 6, root_id)


async def test_bad_emits_fail_the_run_at_once_and_write_no_child(store: ExecutionStore) -> None:
    app = App()
    attempts: list[str] = []

    @app.flow("bad-payload", max_retries=3)
    async def bad_payload(ctx: FlowContext) -> None:
        attempts.append("bad-payload")
        await ctx.node("emit", ctx.emit, "evt", {"when": object()})

    @app.flow("bad-flow", max_retries=3)
    async def bad_flow(ctx: FlowContext) -> None:
        attempts.append("bad-flow")
        await ctx.emit("evt", 1, flow_id="no-such-flow")

    client = await app.client(store)
    async with running_worker(app, store):
        payload_id = await client.create("bad-payload", owner_id=OWNER)
        flow_id = await client.create("bad-flow", owner_id=OWNER)
        bad_payload_done = await client.wait(payload_id, timeout=10)
        bad_flow_done = await client.wait(flow_id, timeout=10)

    assert sorted(attempts) == ["bad-flow", "bad-payload"], "no retries"
    assert bad_payload_done.status is ExecutionStatus.FAILED
    assert bad_payload_done.error_node_id == "emit"
    assert "payload is not JSON-serialisable" in (bad_payload_done.error_message or "")
    assert bad_flow_done.status is ExecutionStatus.FAILED
    assert "no flow is registered as 'no-such-flow'" in (bad_flow_done.error_message or "")
    assert await count_executions(store) == 2, "no child was written"


async def test_the_depth_limit_stops_emitting_with_a_clear_error(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory(max_depth=2)
    app = App()

    @app.flow("recursive")
    async def recursive(ctx: FlowContext) -> str:
        return await ctx.emit("deeper", ctx.execution.execution_depth + 1)

    client = await app.client(store)
    async with running_worker(app, store):
        root_id = await client.create("recursive", owner_id=OWNER)
        await client.wait(root_id, timeout=10)

        async def deepest() -> list[Any]:
            return [n.execution for n in await store.get_execution_tree(root_id)]

        for _ in range(200):
            tree = await deepest()
            if len(tree) == 3 and all(e.status.is_terminal for e in tree):
                break
            await asyncio.sleep(0.05)

    assert [e.execution_depth for e in tree] == [0, 1, 2]
    assert [e.status for e in tree] == [
        ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED, ExecutionStatus.FAILED
    ]
    assert tree[2].failure_count == 0
    assert tree[2].error_message == (
        f"execution {tree[2].id!r} is at depth 2: its children would be at depth 3, "
        "over the limit of 2 nested executions"
    )
