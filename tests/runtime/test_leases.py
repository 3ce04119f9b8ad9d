"""Leases: heartbeats keep a long run's claim; a run whose claim is taken over stops writing."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from flowexec import App, ExecutionStatus, FlowContext, UpdateExecutionStatusParams
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, BlockingNode, running_worker, signal_when_set, wait_until


async def test_heartbeats_keep_a_run_longer_than_its_lease(store: ExecutionStore) -> None:
    app = App()

    @app.flow("long")
    async def long_run(ctx: FlowContext) -> str:
        await ctx.node("work", asyncio.sleep, 1.2)
        return "done"

    client = await app.client(store)
    async with running_worker(app, store, claim_timeout_ms=400, heartbeat_interval_ms=100):
        execution_id = await client.create("long", owner_id=OWNER)
        await asyncio.sleep(0.8)  # twice the lease
        assert await store.claim_execution(execution_id, "intruder", 1000) is None
        done = await client.wait(execution_id, timeout=10)
    assert (done.status, done.result, done.failure_count) == (ExecutionStatus.COMPLETED, "done", 0)


async def take_over(store: ExecutionStore, execution_id: str, lost_by: str) -> int:
    """What happens when a worker's lease lapses and another worker claims the execution."""
    assert await store.release_execution(execution_id, lost_by)
    claim = await store.claim_execution(execution_id, "intruder", 60_000)
    assert claim is not None
    await store.update_execution_status(
        UpdateExecutionStatusParams(
            execution_id, ExecutionStatus.RUNNING, worker_id="intruder", epoch=claim.epoch
        )
    )
    return claim.epoch


async def test_a_run_whose_claim_is_taken_over_is_cancelled_at_the_next_heartbeat(
    store: ExecutionStore,
) -> None:
    app = App()
    block = BlockingNode()

    @app.flow("victim")
    async def victim(ctx: FlowContext) -> str:
        await ctx.node("block", block)
        return "should never be written"

    client = await app.client(store)
    async with running_worker(app, store, heartbeat_interval_ms=150) as worker:
        execution_id = await client.create("victim", owner_id=OWNER)
        await wait_until(signal_when_set(block.entered), what="the node")
        taken_at = time.monotonic()
        epoch = await take_over(store, execution_id, worker.worker_id)

        async def was_cancelled() -> bool:
            return bool(block.cancelled_at)

        await wait_until(was_cancelled, within=3, what="the run to be cancelled")
        await asyncio.sleep(0.3)
        assert worker.active_runs == 0

    assert block.cancelled_at[0] - taken_at < 1.0
    after = await client.get(execution_id)
    assert (after.status, after.processing_worker_id, after.result, after.failure_count) == (
        ExecutionStatus.RUNNING, "intruder", None, 0
    )
    claim = await store.get_claim_for_execution(execution_id)
    assert claim is not None and (claim.worker_id, claim.epoch) == ("intruder", epoch)


@pytest.mark.parametrize("late_write", ["emit", "complete"])
async def test_late_writes_of_a_run_that_lost_its_claim_are_rejected(
    store: ExecutionStore, late_write: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def wait_for_release() -> None:
        entered.set()
        await release.wait()

    @app.flow("late")
    async def late(ctx: FlowContext) -> str:
        await ctx.node("wait", wait_for_release)
        if late_write == "emit":
            await ctx.emit("child", 1)
        return "late result"

    client = await app.client(store)
    # Heartbeats too rare to notice the takeover first: the late write itself must be refused.
    with caplog.at_level(logging.WARNING, logger="flowexec"):
        async with running_worker(
            app, store, claim_timeout_ms=20_000, heartbeat_interval_ms=10_000
        ) as worker:
            execution_id = await client.create("late", owner_id=OWNER)
            await wait_until(signal_when_set(entered), what="the node")
            await take_over(store, execution_id, worker.worker_id)
            release.set()

            async def run_ended() -> bool:
                return worker.active_runs == 0

            await wait_until(run_ended, within=3, what="the run to end")

    after = await client.get(execution_id)
    assert (after.status, after.processing_worker_id, after.result) == (
        ExecutionStatus.RUNNING, "intruder", None
    )
    assert after.failure_count == 0 and after.last_failure_reason is None
    assert await store.get_child_executions(execution_id) == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("no longer holds execution" in m for m in messages), messages


async def test_a_worker_runs_recovery_and_finishes_a_dead_workers_run(
    store: ExecutionStore,
) -> None:
    app = App()

    @app.flow("orphan")
    async def orphan(ctx: FlowContext) -> int:
        return ctx.attempt

    client = await app.client(store)
    execution_id = await client.create("orphan", owner_id=OWNER, start=False)
    await client.start(execution_id)
    claim = await store.claim_execution(execution_id, "dead-worker", 100)
    assert claim is not None
    await store.update_execution_status(
        UpdateExecutionStatusParams(
            execution_id, ExecutionStatus.RUNNING, worker_id="dead-worker", epoch=claim.epoch
        )
    )  # ...and the dead worker never heartbeats again

    async with running_worker(
        app, store, recovery=True, recovery_interval_s=0.1
    ) as worker:
        done = await client.wait(execution_id, timeout=10)

    assert (done.status, done.result, done.failure_count) == (ExecutionStatus.COMPLETED, 2, 1)
    history = await store.get_recovery_history(execution_id)
    assert [(r.previous_worker_id, r.recovered_by_worker, r.recovery_reason) for r in history] == [
        ("dead-worker", worker.worker_id, "expired_claim")
    ]
