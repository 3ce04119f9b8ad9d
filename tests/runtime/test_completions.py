"""A returned run is completed by the worker's next `claim_and_start`, together with its claim.

The store here is the real one behind a thin relay that records (or holds up) the calls the
worker makes, so the tests can see which statement carried each outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from flowexec import (
    App,
    Completion,
    ExecutionStatus,
    FlowContext,
    UpdateExecutionStatusParams,
    WorkBatch,
)
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, running_worker, wait_for_status, wait_until

BeforeCompleting = Callable[[Sequence[Completion]], Awaitable[None]]


class Relay:
    """The real store, with a record of the worker's claims and status writes, and a hook that
    runs before a `claim_and_start` that carries completions."""

    def __init__(self, store: ExecutionStore, before: BeforeCompleting | None = None) -> None:
        self._store = store
        self._before = before
        self.batches: list[tuple[list[Completion], WorkBatch]] = []
        self.status_writes: list[UpdateExecutionStatusParams] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim_and_start(
        self, *args: Any, complete: Sequence[Completion] = (), **kwargs: Any
    ) -> WorkBatch:
        if complete and self._before is not None:
            await self._before(complete)
        batch = await self._store.claim_and_start(*args, complete=complete, **kwargs)
        self.batches.append((list(complete), batch))
        return batch

    async def update_execution_status(self, params: UpdateExecutionStatusParams) -> bool:
        self.status_writes.append(params)
        return await self._store.update_execution_status(params)


def quick_app() -> App:
    """An app whose flow `quick` returns "result" at once."""
    app = App()

    @app.flow("quick")
    async def quick(ctx: FlowContext) -> str:
        return "result"

    return app


async def test_returned_runs_are_completed_by_the_next_claim(store: ExecutionStore) -> None:
    app = App()

    @app.flow("double")
    async def double(ctx: FlowContext) -> int:
        return len(ctx.execution_id) * 2

    client = await app.client(store)
    ids = [await client.create("double", owner_id=OWNER) for _ in range(30)]
    relay = Relay(store)
    async with running_worker(app, relay, concurrency=10):  # type: ignore[arg-type]
        for execution_id in ids:
            done = await client.wait(execution_id, timeout=10)
            assert (done.status, done.result) == (ExecutionStatus.COMPLETED, len(done.id) * 2)

    completed = [i for _, batch in relay.batches for i in batch.completed]
    assert sorted(completed) == sorted(ids)  # each once, and each by a claim_and_start
    assert not relay.status_writes  # no run wrote its own running or completed status
    assert any(batch.completed and batch.started for _, batch in relay.batches), (
        "no statement both completed returned runs and started new ones"
    )


async def test_a_completion_the_batch_refuses_is_written_by_its_run_which_learns_why(
    store: ExecutionStore, caplog: pytest.LogCaptureFixture
) -> None:
    app = quick_app()
    client = await app.client(store)

    async def stop_it_first(complete: Sequence[Completion]) -> None:
        for completion in complete:  # a client's stop lands just before the completion
            await client.stop(completion.execution_id)

    execution_id = await client.create("quick", owner_id=OWNER)
    relay = Relay(store, before=stop_it_first)
    with caplog.at_level(logging.INFO, logger="flowexec"):
        async with running_worker(app, relay) as worker:  # type: ignore[arg-type]
            stopped = await wait_for_status(client, execution_id, ExecutionStatus.STOPPED)
            await wait_until(lambda: _no_runs(worker), what="the run to end")

    assert stopped.result is None
    [(sent, batch)] = [(c, b) for c, b in relay.batches if c]
    assert [c.execution_id for c in sent] == [execution_id] and not batch.completed
    # The run then wrote its outcome itself, and the store told it why it could not.
    assert [p.status for p in relay.status_writes] == [ExecutionStatus.COMPLETED]
    # (A stop releases the claim, so the store reports the fence broken.)
    messages = [r.getMessage() for r in caplog.records
                if getattr(r, "execution_id", None) == execution_id]
    assert any(m.startswith("outcome discarded, lease lost") for m in messages), messages


async def test_a_completion_waiting_for_the_next_claim_keeps_its_lease(
    store: ExecutionStore, caplog: pytest.LogCaptureFixture
) -> None:
    app = quick_app()
    client = await app.client(store)
    lease_ms = 1_000
    renewed: list[bool] = []

    async def hold_up(complete: Sequence[Completion]) -> None:
        # Longer than the lease: only heartbeats keep the claim of the waiting run alive.
        await asyncio.sleep(2.5 * lease_ms / 1000)
        for completion in complete:
            claim = await store.get_claim_for_execution(completion.execution_id)
            assert claim is not None
            renewed.append(claim.heartbeat_at > claim.claimed_at
                           and claim.expires_at > await store.now())

    execution_id = await client.create("quick", owner_id=OWNER)
    relay = Relay(store, before=hold_up)
    with caplog.at_level(logging.INFO, logger="flowexec"):
        async with running_worker(
            app, relay, claim_timeout_ms=lease_ms, heartbeat_interval_ms=200  # type: ignore[arg-type]
        ):
            done = await client.wait(execution_id, timeout=10)

    assert (done.status, done.result) == (ExecutionStatus.COMPLETED, "result")
    assert renewed == [True]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], (
        "a run waiting for its completion lost its lease or was cancelled"
    )


async def _no_runs(worker: Any) -> bool:
    return bool(worker.active_runs == 0)


async def test_a_run_paused_while_its_completion_waits_completes_after_the_resume(
    store: ExecutionStore,
) -> None:
    app = quick_app()
    client = await app.client(store)
    paused = asyncio.Event()

    async def pause_it_first(complete: Sequence[Completion]) -> None:
        if not paused.is_set():
            for completion in complete:
                await client.pause(completion.execution_id)
            paused.set()

    execution_id = await client.create("quick", owner_id=OWNER)
    relay = Relay(store, before=pause_it_first)
    async with running_worker(app, relay) as worker:  # type: ignore[arg-type]
        await asyncio.wait_for(paused.wait(), 10)
        await asyncio.sleep(0.3)  # several control polls: the run must hold, not finish
        held = await client.get(execution_id)
        assert (held.status, held.result, worker.active_runs) == (
            ExecutionStatus.PAUSED, None, 1
        )
        await client.resume(execution_id)
        done = await client.wait(execution_id, timeout=10)

    assert (done.status, done.result) == (ExecutionStatus.COMPLETED, "result")
    # Refused once (paused) by the batch and once by the run's own write, then written.
    sent = [(c[0].execution_id, bool(b.completed)) for c, b in relay.batches if c]
    assert sent == [(execution_id, False), (execution_id, True)]
