"""Flows and nodes: a run's result, what the context shows, sync and async nodes, logs."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from flowexec import App, ExecutionStatus, FlowContext
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, running_worker


async def test_a_flow_runs_its_nodes_and_stores_its_result(store: ExecutionStore) -> None:
    app = App()
    threads: list[str] = []

    def add(a: int, b: int) -> int:
        threads.append(threading.current_thread().name)
        return a + b

    async def double(x: int) -> int:
        threads.append(threading.current_thread().name)
        return 2 * x

    @app.flow("sum")
    async def sum_flow(ctx: FlowContext) -> dict[str, Any]:
        assert ctx.integration is not None
        total = await ctx.node("add", add, ctx.integration["a"], b=ctx.integration["b"])
        doubled = await ctx.node("double", double, total)
        return {"total": total, "doubled": doubled}

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("sum", owner_id=OWNER, integration={"a": 2, "b": 3})
        done = await client.wait(execution_id, timeout=10)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == {"total": 5, "doubled": 10}
    assert await client.result(execution_id) == {"total": 5, "doubled": 10}
    assert done.started_at is not None and done.completed_at is not None
    assert done.started_at <= done.completed_at
    assert (done.failure_count, done.error_message, done.error_node_id) == (0, None, None)
    assert await store.get_claim_for_execution(execution_id) is not None
    assert await store.get_active_claims() == []
    main = threading.main_thread().name
    assert threads[0] != main, "a sync node runs off the event loop"
    assert threads[1] == main, "an async node runs on the event loop"


async def test_the_context_shows_the_execution(store: ExecutionStore) -> None:
    app = App()
    seen: dict[str, Any] = {}

    @app.flow("inspect")
    async def inspect_flow(ctx: FlowContext) -> None:
        seen.update(
            execution_id=ctx.execution_id,
            flow_id=ctx.flow_id,
            status=ctx.execution.status,
            options=ctx.options,
            integration=ctx.integration,
            event=ctx.event,
            attempt=ctx.attempt,
            worker_id=ctx.worker_id,
        )

    client = await app.client(store)
    async with running_worker(app, store, worker_id="worker-ctx"):
        execution_id = await client.create(
            "inspect",
            owner_id=OWNER,
            options={"execution": {"node_timeout_ms": 5000}},
            integration={"tenant": "t1"},
        )
        await client.wait(execution_id, timeout=10)

    assert seen["execution_id"] == execution_id
    assert seen["flow_id"] == "inspect"
    assert seen["status"] is ExecutionStatus.RUNNING
    assert seen["options"].execution.node_timeout_ms == 5000
    assert seen["integration"] == {"tenant": "t1"}
    assert seen["event"] is None, "a root has no triggering event"
    assert seen["attempt"] == 1
    assert seen["worker_id"] == "worker-ctx"
    assert (await client.result(execution_id)) is None


async def test_every_log_line_of_a_run_names_execution_flow_and_worker(
    store: ExecutionStore, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    @app.flow("chatty")
    async def chatty(ctx: FlowContext) -> int:
        ctx.log.info("hello from the flow")
        return 1

    client = await app.client(store)
    with caplog.at_level(logging.DEBUG, logger="flowexec"):
        async with running_worker(app, store, worker_id="worker-logs"):
            execution_id = await client.create("chatty", owner_id=OWNER)
            await client.wait(execution_id, timeout=10)

    run_lines = [r for r in caplog.records if getattr(r, "execution_id", None) == execution_id
                 and r.name.startswith("flowexec.worker")]
    messages = [r.getMessage() for r in run_lines]
    assert "hello from the flow" in messages
    assert any(m.startswith("started") for m in messages)
    assert "completed" in messages
    for record in run_lines:
        assert record.__dict__["worker_id"] == "worker-logs"
        if record.getMessage() != "started (attempt 1)":
            assert record.__dict__["flow_id"] == "chatty", record.getMessage()
    worker_lines = [r for r in caplog.records if r.name == "flowexec.worker"]
    assert worker_lines and all(r.__dict__["worker_id"] == "worker-logs" for r in worker_lines)


async def test_integration_is_an_empty_dict_when_the_execution_has_none(
    store: ExecutionStore,
) -> None:
    app = App()

    @app.flow("plain")
    async def plain_flow(ctx: FlowContext) -> dict[str, Any]:
        return {"region": ctx.integration.get("region", "default"), "all": ctx.integration}

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("plain", owner_id=OWNER)
        done = await client.wait(execution_id, timeout=10)
    assert done.status is ExecutionStatus.COMPLETED, done.error_message
    assert done.result == {"region": "default", "all": {}}
