"""Execution options at work: node and flow timeouts, max_concurrency, debug breakpoints."""

from __future__ import annotations

import asyncio
import time

from flowexec import App, ExecutionStatus, FlowContext, NodeTimeout
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, running_worker, wait_for_status


async def test_a_node_that_runs_too_long_times_out(store: ExecutionStore) -> None:
    app = App()
    cancelled: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise

    @app.flow("slow-node", max_retries=0)
    async def slow_node(ctx: FlowContext) -> None:
        await ctx.node("quick", asyncio.sleep, 0)
        await ctx.node("slow", slow)

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create(
            "slow-node", owner_id=OWNER, options={"execution": {"node_timeout_ms": 150}}
        )
        done = await client.wait(execution_id, timeout=10)

    assert cancelled == ["slow"]
    assert done.status is ExecutionStatus.FAILED
    assert done.error_node_id == "slow"
    assert done.error_message is not None and "timed out after 150 ms" in done.error_message


async def test_a_flow_may_handle_a_node_timeout(store: ExecutionStore) -> None:
    app = App()

    @app.flow("fallback")
    async def fallback(ctx: FlowContext) -> str:
        try:
            return await ctx.node("primary", asyncio.sleep, 30, "late")
        except NodeTimeout as exc:
            assert exc.node_id == "primary"
            return await ctx.node("secondary", asyncio.sleep, 0, "fallback")

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create(
            "fallback", owner_id=OWNER, options={"execution": {"node_timeout_ms": 100}}
        )
        done = await client.wait(execution_id, timeout=10)

    assert (done.status, done.result, done.error_node_id) == (
        ExecutionStatus.COMPLETED, "fallback", None
    )


async def test_a_run_that_runs_too_long_times_out(store: ExecutionStore) -> None:
    app = App()
    finished: list[int] = []

    @app.flow("long", max_retries=0)
    async def long_flow(ctx: FlowContext) -> None:
        for i in range(100):
            await ctx.node(f"step-{i}", asyncio.sleep, 0.05)
            finished.append(i)

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create(
            "long", owner_id=OWNER, options={"execution": {"flow_timeout_ms": 300}}
        )
        done = await client.wait(execution_id, timeout=10)

    assert done.status is ExecutionStatus.FAILED
    assert done.error_message is not None and "timed out after 300 ms" in done.error_message
    assert 2 <= len(finished) < 10
    assert done.error_node_id == f"step-{len(finished)}", "the node the timeout interrupted"


async def test_max_concurrency_bounds_the_nodes_in_flight(store: ExecutionStore) -> None:
    app = App()
    in_flight = 0
    highest = 0

    async def work(i: int) -> int:
        nonlocal in_flight, highest
        in_flight += 1
        highest = max(highest, in_flight)
        await asyncio.sleep(0.03)
        in_flight -= 1
        return i

    def blocking_work(i: int) -> int:
        time.sleep(0.03)
        return i

    @app.flow("fan-out")
    async def fan_out(ctx: FlowContext) -> list[int]:
        first = await asyncio.gather(*(ctx.node(f"n{i}", work, i) for i in range(12)))
        second = await asyncio.gather(
            *(ctx.node(f"b{i}", blocking_work, i) for i in range(6))
        )
        return [*first, *second]

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create(
            "fan-out", owner_id=OWNER, options={"execution": {"max_concurrency": 3}}
        )
        done = await client.wait(execution_id, timeout=10)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == [*range(12), *range(6)]
    assert highest == 3, "never more than 3 nodes at once, and 3 when there is work for 3"


async def test_a_breakpoint_pauses_before_its_node_until_resumed(store: ExecutionStore) -> None:
    app = App()
    ran: list[str] = []

    async def step(name: str) -> None:
        ran.append(name)

    @app.flow("debugged")
    async def debugged(ctx: FlowContext) -> list[str]:
        for name in ("load", "transform", "save"):
            await ctx.node(name, step, name)
        return ran

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create(
            "debugged",
            owner_id=OWNER,
            options={
                "debug": True,
                "breakpoints": ["transform"],
                "execution": {"flow_timeout_ms": 400},
            },
        )
        paused = await wait_for_status(client, execution_id, ExecutionStatus.PAUSED)
        assert paused.processing_worker_id is not None, "the worker still holds it"
        await asyncio.sleep(0.6)  # longer than the flow timeout: paused time does not count
        assert ran == ["load"]
        assert (await client.get(execution_id)).status is ExecutionStatus.PAUSED
        await client.resume(execution_id)
        done = await client.wait(execution_id, timeout=10)

    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == ["load", "transform", "save"]


async def test_breakpoints_need_debug(store: ExecutionStore) -> None:
    app = App()

    @app.flow("not-debugged")
    async def not_debugged(ctx: FlowContext) -> str:
        return await ctx.node("transform", asyncio.sleep, 0, "done")

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create(
            "not-debugged", owner_id=OWNER, options={"breakpoints": ["transform"]}
        )
        done = await client.wait(execution_id, timeout=10)

    assert (done.status, done.result) == (ExecutionStatus.COMPLETED, "done")
