"""Lifecycle commands through the client, and how fast a worker obeys them."""

from __future__ import annotations

import asyncio
import time

import pytest

from flowexec import (
    App,
    ExecutionNotFound,
    ExecutionStatus,
    ExecutionTimeout,
    FlowContext,
    InvalidTransition,
)
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    OWNER,
    BlockingNode,
    running_worker,
    signal_when_set,
    wait_for_status,
    wait_until,
)


async def test_created_without_start_it_waits_for_start(store: ExecutionStore) -> None:
    app = App()

    @app.flow("later")
    async def later(ctx: FlowContext) -> str:
        return "ran"

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("later", owner_id=OWNER, start=False)
        await asyncio.sleep(0.3)
        waiting = await client.get(execution_id)
        assert (waiting.status, waiting.started_at, waiting.available_at) == (
            ExecutionStatus.CREATED, None, None
        )
        assert await client.start(execution_id) is True
        done = await client.wait(execution_id, timeout=10)
    assert (done.status, done.result) == (ExecutionStatus.COMPLETED, "ran")
    with pytest.raises(InvalidTransition):
        await client.start(execution_id)


async def test_stop_cancels_a_running_execution_within_a_second(store: ExecutionStore) -> None:
    app = App()
    block = BlockingNode()
    after_stop: list[str] = []

    @app.flow("blocking")
    async def blocking(ctx: FlowContext) -> None:
        await ctx.node("block", block)
        after_stop.append("next node")

    client = await app.client(store)
    async with running_worker(app, store, control_interval_s=0.25):
        execution_id = await client.create("blocking", owner_id=OWNER)
        await wait_until(signal_when_set(block.entered), what="the node to start")
        stopped_at = time.monotonic()
        await client.stop(execution_id, reason="operator said so")
        await wait_until(
            lambda: _truthy(block.cancelled_at), within=2, what="the run to be cancelled"
        )
        await asyncio.sleep(0.3)

    assert block.cancelled_at[0] - stopped_at < 1.0
    assert after_stop == []
    stopped = await client.get(execution_id)
    assert stopped.status is ExecutionStatus.STOPPED
    assert stopped.completed_at is not None
    assert stopped.error_message == "operator said so"
    assert stopped.failure_count == 0 and stopped.result is None
    assert await store.get_active_claims() == []


async def test_pause_holds_at_the_next_node_and_resume_continues(store: ExecutionStore) -> None:
    app = App()
    first_started = asyncio.Event()
    release_first = asyncio.Event()
    ran: list[str] = []

    async def first() -> None:
        first_started.set()
        await release_first.wait()
        ran.append("first")

    async def second() -> None:
        ran.append("second")

    @app.flow("two-steps")
    async def two_steps(ctx: FlowContext) -> list[str]:
        await ctx.node("first", first)
        await ctx.node("second", second)
        return ran

    client = await app.client(store)
    async with running_worker(app, store, control_interval_s=0.25):
        execution_id = await client.create("two-steps", owner_id=OWNER)
        await wait_until(signal_when_set(first_started), what="the first node")
        await client.pause(execution_id, reason="inspect")
        await asyncio.sleep(0.5)  # the worker has seen the pause by now
        release_first.set()  # the running node finishes undisturbed...
        await wait_until(lambda: _truthy(ran), what="the first node to finish")
        await asyncio.sleep(0.5)
        assert ran == ["first"], "...but the next node waits"
        held = await client.get(execution_id)
        assert held.status is ExecutionStatus.PAUSED
        with pytest.raises(InvalidTransition):
            await client.pause(execution_id)
        await client.resume(execution_id)
        done = await client.wait(execution_id, timeout=10)

    assert (done.status, done.result) == (ExecutionStatus.COMPLETED, ["first", "second"])
    assert done.started_at is not None and done.started_at == held.started_at


async def test_pause_while_the_flow_is_returning_holds_the_completion(
    store: ExecutionStore,
) -> None:
    app = App()
    entered = asyncio.Event()
    release = asyncio.Event()

    @app.flow("last-node")
    async def last_node(ctx: FlowContext) -> str:
        await ctx.node("only", _wait_for, entered, release)
        return "finished"

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("last-node", owner_id=OWNER)
        await wait_until(signal_when_set(entered), what="the node")
        await client.pause(execution_id)
        await asyncio.sleep(0.3)
        release.set()
        await asyncio.sleep(0.3)
        assert (await client.get(execution_id)).status is ExecutionStatus.PAUSED
        await client.resume(execution_id)
        done = await client.wait(execution_id, timeout=10)

    assert (done.status, done.result) == (ExecutionStatus.COMPLETED, "finished")


async def test_stop_of_a_paused_execution_ends_it(store: ExecutionStore) -> None:
    app = App()
    entered = asyncio.Event()

    @app.flow("paused-then-stopped")
    async def flow(ctx: FlowContext) -> None:
        await ctx.node("only", _wait_for, entered, asyncio.Event())

    client = await app.client(store)
    async with running_worker(app, store) as worker:
        execution_id = await client.create("paused-then-stopped", owner_id=OWNER)
        await wait_until(signal_when_set(entered), what="the node")
        await client.pause(execution_id)
        await wait_for_status(client, execution_id, ExecutionStatus.PAUSED)
        await client.stop(execution_id)

        async def worker_let_go() -> bool:
            return worker.active_runs == 0

        await wait_until(worker_let_go, within=2, what="the worker to drop the run")
    assert (await client.get(execution_id)).status is ExecutionStatus.STOPPED


async def test_illegal_commands_raise_and_change_nothing(store: ExecutionStore) -> None:
    app = App()
    entered = asyncio.Event()

    @app.flow("quick")
    async def quick(ctx: FlowContext) -> int:
        return 1

    @app.flow("hold")
    async def hold(ctx: FlowContext) -> None:
        await ctx.node("hold", _wait_for, entered, asyncio.Event())

    client = await app.client(store)
    async with running_worker(app, store):
        completed_id = await client.create("quick", owner_id=OWNER)
        await client.wait(completed_id, timeout=10)
        running_id = await client.create("hold", owner_id=OWNER)
        await wait_until(signal_when_set(entered), what="the node")
        queued_id = await client.create("quick", owner_id=OWNER, start=False)

        before = {i: await client.get(i) for i in (completed_id, running_id, queued_id)}
        with pytest.raises(InvalidTransition, match="is running: it cannot be resumed"):
            await client.resume(running_id)
        with pytest.raises(InvalidTransition, match="is completed, which is final"):
            await client.stop(completed_id)
        with pytest.raises(InvalidTransition):
            await client.pause(completed_id)
        with pytest.raises(InvalidTransition):
            await client.resume(completed_id)
        with pytest.raises(InvalidTransition, match="is created: it cannot be paused"):
            await client.pause(queued_id)
        with pytest.raises(InvalidTransition):
            await client.resume(queued_id)
        after = {i: await client.get(i) for i in (completed_id, running_id, queued_id)}
        assert after == before
        await client.stop(running_id)
        await client.stop(queued_id)

    assert (await client.get(queued_id)).started_at is None


async def test_unknown_ids_and_wait_timeouts(store: ExecutionStore) -> None:
    app = App()

    @app.flow("never-run")
    async def never_run(ctx: FlowContext) -> None:
        return None

    client = await app.client(store)
    for command in (client.get, client.stop, client.pause, client.resume, client.result,
                    client.start, client.wait):
        with pytest.raises(ExecutionNotFound):
            await command("EX-does-not-exist")
    execution_id = await client.create("never-run", owner_id=OWNER)  # no worker runs it
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout, match="still created") as timed_out:
        await client.wait(execution_id, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert timed_out.value.execution_id == execution_id
    assert timed_out.value.status is ExecutionStatus.CREATED
    assert timed_out.value.timeout_s == 0.2


async def _wait_for(entered: asyncio.Event, release: asyncio.Event) -> None:
    entered.set()
    await release.wait()


async def _truthy(items: list[object]) -> bool:
    return bool(items)
