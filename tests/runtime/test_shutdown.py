"""Shutdown: runs finish within the grace period; the rest go back to the queue uncounted."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowexec import App, Client, ExecutionStatus, FlowContext, Worker
from flowexec.store.protocol import ExecutionStore
from tests.worker_app import SLEEPER
from tests.worker_app import app as subprocess_app
from tests.worker_processes import WorkerProcess, stop_processes

from .helpers import FAST, OWNER, running_worker, signal_when_set, wait_for_status, wait_until


@dataclass(frozen=True)
class RunInProgress:
    """A worker running in this event loop, and the execution it has begun to run."""

    client: Client
    execution_id: str
    worker: Worker
    task: asyncio.Task[None]

    async def ended(self) -> None:
        await asyncio.wait_for(self.task, 5)

    async def stop(self) -> float:
        """Stops the worker and waits for it to end; the seconds that took."""
        stopped_at = time.monotonic()
        self.worker.stop()
        await self.ended()
        return time.monotonic() - stopped_at


@asynccontextmanager
async def run_in_progress(
    app: App, store: ExecutionStore, flow_id: str, entered: asyncio.Event, *, grace_s: float
) -> AsyncIterator[RunInProgress]:
    """Starts a worker with `grace_s` to shut down in, and an execution of `flow_id`; enters
    once the run has set `entered`. The test stops the worker; the block's end makes sure."""
    client = await app.client(store)
    worker = Worker(app, store, **{**FAST, "shutdown_grace_s": grace_s})
    task = asyncio.create_task(worker.run())
    try:
        execution_id = await client.create(flow_id, owner_id=OWNER)
        await wait_until(signal_when_set(entered), what="the run")
        yield RunInProgress(client, execution_id, worker, task)
    finally:
        if not task.done():
            worker.stop()
            await asyncio.wait_for(task, 15)


@dataclass(frozen=True)
class SleeperInAProcess:
    """A worker process, and the 30 s sleeper it is running."""

    client: Client
    execution_id: str
    process: WorkerProcess


@asynccontextmanager
async def sleeper_in_a_process(
    store: ExecutionStore, store_url: str, prefix: str, log_dir: Path, worker_id: str,
    *, grace_s: float,
) -> AsyncIterator[SleeperInAProcess]:
    """Starts a worker process (with signal handlers of its own, and `grace_s` to shut down
    in) and a sleeper; enters once the sleeper runs. The process does not outlive the block."""
    settings = {k: v for k, v in FAST.items() if k != "install_signal_handlers"}
    client = await subprocess_app.client(store)
    execution_id = await client.create(SLEEPER, owner_id=OWNER, integration={"seconds": 30})
    process = WorkerProcess(
        store_url, prefix, worker_id, log_dir, {**settings, "shutdown_grace_s": grace_s}
    )
    try:
        await wait_for_status(client, execution_id, ExecutionStatus.RUNNING, within=20)
        yield SleeperInAProcess(client, execution_id, process)
    finally:
        stop_processes([process])


async def assert_back_in_the_queue_uncounted(
    client: Client, execution_id: str, note: str = ""
) -> None:
    requeued = await client.get(execution_id)
    assert (requeued.status, requeued.failure_count) == (ExecutionStatus.CREATED, 0), note


async def test_runs_that_finish_within_the_grace_period_complete(store: ExecutionStore) -> None:
    app = App()
    entered = asyncio.Event()

    @app.flow("short")
    async def short(ctx: FlowContext) -> str:
        entered.set()
        await ctx.node("work", asyncio.sleep, 0.3)
        return "finished"

    async with run_in_progress(app, store, "short", entered, grace_s=5) as run:
        run.worker.stop()
        later_id = await run.client.create("short", owner_id=OWNER)  # after stop: not claimed
        await run.ended()

    done = await run.client.get(run.execution_id)
    assert (done.status, done.result) == (ExecutionStatus.COMPLETED, "finished")
    later = await run.client.get(later_id)
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

    async with run_in_progress(app, store, "slow", entered, grace_s=0.3) as run:
        assert await run.stop() < 2

    requeued = await run.client.get(run.execution_id)
    assert requeued.status is ExecutionStatus.CREATED
    assert requeued.failure_count == 0 and requeued.last_failure_reason is None
    assert requeued.processing_worker_id is None
    assert requeued.available_at is not None and requeued.available_at <= await store.now()
    assert await store.get_active_claims() == []

    async with running_worker(app, store):
        done = await run.client.wait(run.execution_id, timeout=10)
    assert (done.status, done.failure_count, attempts) == (ExecutionStatus.COMPLETED, 0, [1, 1])


async def test_a_paused_run_does_not_hold_up_shutdown(store: ExecutionStore) -> None:
    app = App()
    entered = asyncio.Event()

    @app.flow("paused")
    async def paused(ctx: FlowContext) -> None:
        entered.set()
        await ctx.node("work", asyncio.sleep, 0.2)
        await ctx.node("next", asyncio.sleep, 0)

    async with run_in_progress(app, store, "paused", entered, grace_s=30) as run:
        await run.client.pause(run.execution_id)
        await asyncio.sleep(0.4)
        assert await run.stop() < 2, "a paused run waits for a person, not for shutdown"
    await assert_back_in_the_queue_uncounted(run.client, run.execution_id)


async def test_cancelling_a_worker_gives_its_runs_back_at_once(store: ExecutionStore) -> None:
    app = App()
    entered = asyncio.Event()

    @app.flow("cancelled")
    async def cancelled(ctx: FlowContext) -> None:
        entered.set()
        await ctx.node("work", asyncio.sleep, 30)

    async with run_in_progress(app, store, "cancelled", entered, grace_s=30) as run:
        started = time.monotonic()
        run.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run.task
        assert time.monotonic() - started < 2
    await assert_back_in_the_queue_uncounted(run.client, run.execution_id)


@pytest.mark.slow
async def test_sigterm_shuts_a_worker_process_down_gracefully(
    store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    async with sleeper_in_a_process(
        store, store_url, unique_prefix, tmp_path, "signal-w1", grace_s=0.5
    ) as run:
        signalled_at = time.monotonic()
        run.process.signal(signal.SIGTERM)
        code = await run.process.exit_code(10)
        assert time.monotonic() - signalled_at < 5

    log = run.process.log()
    assert code == 0, log
    assert "SIGTERM: shutting down" in log
    assert "put back in the queue" in log
    await assert_back_in_the_queue_uncounted(run.client, run.execution_id, log)
    assert await store.get_active_claims() == []


@pytest.mark.slow
async def test_a_second_signal_exits_at_once(
    store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    async with sleeper_in_a_process(
        store, store_url, unique_prefix, tmp_path, "signal-w2", grace_s=60
    ) as run:
        run.process.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert run.process.alive, "the first signal waits for the grace period"
        signalled_at = time.monotonic()
        run.process.signal(signal.SIGINT)
        code = await run.process.exit_code(10)
        assert time.monotonic() - signalled_at < 3

    log = run.process.log()
    assert code == 0, log
    assert "SIGINT again: exiting at once" in log
    await assert_back_in_the_queue_uncounted(run.client, run.execution_id, log)
