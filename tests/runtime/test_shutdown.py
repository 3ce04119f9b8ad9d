"""Shutdown: runs finish within the grace period; the rest go back to the queue uncounted."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from flowexec import App, ExecutionStatus, FlowContext, Worker
from flowexec.store.protocol import ExecutionStore
from tests.worker_app import app as subprocess_app
from tests.worker_processes import WorkerProcess, stop_processes

from .helpers import FAST, OWNER, running_worker, signal_when_set, wait_for_status, wait_until


async def test_runs_that_finish_within_the_grace_period_complete(store: ExecutionStore) -> None:
    app = App()
    entered = asyncio.Event()

    @app.flow("short")
    async def short(ctx: FlowContext) -> str:
        entered.set()
        await ctx.node("work", asyncio.sleep, 0.3)
        return "finished"

    client = await app.client(store)
    worker = Worker(app, store, **{**FAST, "shutdown_grace_s": 5})
    task = asyncio.create_task(worker.run())
    execution_id = await client.create("short", owner_id=OWNER)
    await wait_until(signal_when_set(entered), what="the run")
    worker.stop()
    later_id = await client.create("short", owner_id=OWNER)  # after stop: not claimed
    await asyncio.wait_for(task, 5)

    done = await client.get(execution_id)
    assert (done.status, done.result) == (ExecutionStatus.COMPLETED, "finished")
    later = await client.get(later_id)
    assert (later.status, later.started_at) == (ExecutionStatus.CREATED, None)


async def test_runs_past_the_grace_period_go_back_to_the_queue_uncounted(
    store: ExecutionStore,
) -> None:
    app = App()
    attempts: list[int] = []
    entered = asyncio.Event()

    @app.flow("slow")
    async def slow(ctx: FlowContext) -> str:
        attempts.append(ctx.attempt)
        entered.set()
        await ctx.node("work", asyncio.sleep, 30 if len(attempts) == 1 else 0)
        return "finished"

    client = await app.client(store)
    worker = Worker(app, store, **{**FAST, "shutdown_grace_s": 0.3})
    task = asyncio.create_task(worker.run())
    execution_id = await client.create("slow", owner_id=OWNER)
    await wait_until(signal_when_set(entered), what="the run")
    stopped_at = time.monotonic()
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - stopped_at < 2

    requeued = await client.get(execution_id)
    assert requeued.status is ExecutionStatus.CREATED
    assert requeued.failure_count == 0 and requeued.last_failure_reason is None
    assert requeued.processing_worker_id is None
    assert requeued.available_at is not None and requeued.available_at <= await store.now()
    assert await store.get_active_claims() == []

    async with running_worker(app, store):
        done = await client.wait(execution_id, timeout=10)
    assert (done.status, done.failure_count, attempts) == (ExecutionStatus.COMPLETED, 0, [1, 1])


async def test_a_paused_run_does_not_hold_up_shutdown(store: ExecutionStore) -> None:
    app = App()
    entered = asyncio.Event()

    @app.flow("paused")
    async def paused(ctx: FlowContext) -> None:
        entered.set()
        await ctx.node("work", asyncio.sleep, 0.2)
        await ctx.node("next", asyncio.sleep, 0)

    client = await app.client(store)
    worker = Worker(app, store, **{**FAST, "shutdown_grace_s": 30})
    task = asyncio.create_task(worker.run())
    execution_id = await client.create("paused", owner_id=OWNER)
    await wait_until(signal_when_set(entered), what="the run")
    await client.pause(execution_id)
    await asyncio.sleep(0.4)
    started = time.monotonic()
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 2, "a paused run waits for a person, not for shutdown"
    requeued = await client.get(execution_id)
    assert (requeued.status, requeued.failure_count) == (ExecutionStatus.CREATED, 0)


async def test_cancelling_a_worker_gives_its_runs_back_at_once(store: ExecutionStore) -> None:
    app = App()
    entered = asyncio.Event()

    @app.flow("cancelled")
    async def cancelled(ctx: FlowContext) -> None:
        entered.set()
        await ctx.node("work", asyncio.sleep, 30)

    client = await app.client(store)
    worker = Worker(app, store, **{**FAST, "shutdown_grace_s": 30})
    task = asyncio.create_task(worker.run())
    execution_id = await client.create("cancelled", owner_id=OWNER)
    await wait_until(signal_when_set(entered), what="the run")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2
    requeued = await client.get(execution_id)
    assert (requeued.status, requeued.failure_count) == (ExecutionStatus.CREATED, 0)


def _settings(**extra: object) -> dict[str, object]:
    settings = {k: v for k, v in FAST.items() if k != "install_signal_handlers"}
    return {**settings, **extra}


@pytest.mark.slow
async def test_sigterm_shuts_a_worker_process_down_gracefully(
    store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    client = await subprocess_app.client(store)
    execution_id = await client.create("sleeper", owner_id=OWNER, integration={"seconds": 30})
    worker = WorkerProcess(
        store_url, unique_prefix, "signal-w1", tmp_path, _settings(shutdown_grace_s=0.5)
    )
    process = worker.process
    try:
        await wait_for_status(client, execution_id, ExecutionStatus.RUNNING, within=20)
        signalled_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 10)
        assert time.monotonic() - signalled_at < 5
    finally:
        stop_processes([worker])

    log = worker.log()
    assert code == 0, log
    assert "SIGTERM: shutting down" in log
    assert "put back in the queue" in log
    requeued = await client.get(execution_id)
    assert (requeued.status, requeued.failure_count) == (ExecutionStatus.CREATED, 0), log
    assert await store.get_active_claims() == []


@pytest.mark.slow
async def test_a_second_signal_exits_at_once(
    store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    client = await subprocess_app.client(store)
    execution_id = await client.create("sleeper", owner_id=OWNER, integration={"seconds": 30})
    worker = WorkerProcess(
        store_url, unique_prefix, "signal-w2", tmp_path, _settings(shutdown_grace_s=60)
    )
    process = worker.process
    try:
        await wait_for_status(client, execution_id, ExecutionStatus.RUNNING, within=20)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert process.poll() is None, "the first signal waits for the grace period"
        signalled_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(process.wait, 10)
        assert time.monotonic() - signalled_at < 3
    finally:
        stop_processes([worker])

    log = worker.log()
    assert code == 0, log
    assert "SIGINT again: exiting at once" in log
    requeued = await client.get(execution_id)
    assert (requeued.status, requeued.failure_count) == (ExecutionStatus.CREATED, 0), log
