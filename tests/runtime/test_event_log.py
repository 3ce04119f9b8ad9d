"""What a run records in its execution's event log: nodes, children, `ctx.log`, retries and
tracebacks, batched by the worker; recovery continuing the same index sequence."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from flowexec import App, ExecutionStatus, FlowContext
from flowexec.cli.events_command import read_progress
from flowexec.errors import ValidationError
from flowexec.model import EventBatch
from flowexec.runtime.recovery import RecoveryService
from flowexec.store.protocol import ExecutionStore
from tests.conformance.helpers import start_running, wait_for_lease_end

from .helpers import OWNER, running_worker, wait_for_status

RAISING_CALL = 'payload.get("missing")'
"""The call on the line the traceback must show."""
RAISING_LINE = next(
    n for n, text in enumerate(Path(__file__).read_text().splitlines(), 1)
    if text.strip().startswith(RAISING_CALL)
)


def flaky_step(attempt: int) -> None:
    if attempt == 1:
        raise RuntimeError("first attempt fails")


async def test_a_run_records_nodes_children_logs_and_its_retry(store: ExecutionStore) -> None:
    app = App()

    @app.flow("steps", max_retries=2)
    async def steps(ctx: FlowContext) -> dict[str, Any]:
        await ctx.node("fetch", lambda: 3)
        ctx.log("fetched", rows=3)
        await ctx.emit("item", {"n": 1}, flow_id="child")
        await ctx.node("flaky", flaky_step, ctx.attempt)
        return {"ok": True}

    @app.flow("child")
    async def child(ctx: FlowContext) -> None:
        return None

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("steps", owner_id=OWNER)
        done = await client.wait(execution_id, timeout=15)
        events = [e async for e in client.events(execution_id)]
    assert done.status is ExecutionStatus.COMPLETED
    one_attempt = [
        "flow:started", "node:started", "node:completed", "log", "child:spawned",
        "node:started",
    ]
    replayed = ["flow:started", "node:replayed", "log", "child:spawned", "node:started"]
    assert [e.type for e in events] == [
        *one_attempt, "node:failed", "flow:retrying",
        *replayed, "node:completed", "flow:completed",
    ]
    assert [e.index for e in events] == list(range(len(events)))
    first, second = events[0].attempt, events[8].attempt
    assert second > first and {e.attempt for e in events[:8]} == {first}
    by_type = {e.type: e.data for e in events[:8]}
    assert by_type["log"] == {"message": "fetched", "rows": 3}
    assert by_type["child:spawned"]["event_name"] == "item"
    assert by_type["child:spawned"]["flow_id"] == "child"
    assert by_type["node:failed"]["type"] == "RuntimeError"
    assert isinstance(events[2].data["duration_ms"], int)
    retrying = events[7].data
    assert retrying["failure_counted"] is True and isinstance(retrying["delay_ms"], int)
    assert "first attempt fails" in str(retrying["traceback"])


async def test_a_flow_that_raises_leaves_its_traceback_in_the_event_and_the_log(
    store: ExecutionStore, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    @app.flow("broken", max_retries=0)
    async def broken(ctx: FlowContext) -> None:
        payload: dict[str, Any] | None = None
        payload.get("missing")  # type: ignore[union-attr]

    client = await app.client(store)
    with caplog.at_level(logging.WARNING, logger="flowexec.worker"):
        async with running_worker(app, store):
            execution_id = await client.create("broken", owner_id=OWNER)
            await wait_for_status(client, execution_id, ExecutionStatus.FAILED)
    [failed] = await store.get_events(execution_id, types=["flow:failed"])
    traceback = str(failed.data["traceback"])
    assert failed.data["type"] == "AttributeError"
    where = f'File "{__file__}", line {RAISING_LINE}, in broken'
    assert where in traceback and RAISING_CALL in traceback
    shown = await read_progress(store, execution_id)  # what `flowexec show` prints
    assert shown.traceback == traceback
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert where in logged and "AttributeError" in logged


async def test_a_thousand_nodes_are_recorded_in_a_few_statements(
    store: ExecutionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = App()
    appends: list[int] = []
    append = store.append_events

    async def counting_append(worker_id: str, batches: list[EventBatch]) -> set[str]:
        appends.append(sum(len(b.events) for b in batches))
        return await append(worker_id, batches)

    monkeypatch.setattr(store, "append_events", counting_append)

    @app.flow("wide", checkpoint=False)  # events only: tests/runtime/test_steps.py batches results
    async def wide(ctx: FlowContext) -> int:
        for n in range(1000):
            await ctx.node(f"n{n}", _identity, n)
        return 1000

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("wide", owner_id=OWNER)
        await client.wait(execution_id, timeout=30)
    events = await store.get_events(execution_id, limit=5000)
    assert len(events) == 2002 and events[-1].type == "flow:completed"
    assert sum(appends) == 2000
    assert len(appends) < 100, appends


async def _identity(n: int) -> int:
    return n


async def test_a_flow_without_events_appends_nothing(
    store: ExecutionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = App()
    appends: list[object] = []
    monkeypatch.setattr(store, "append_events", lambda *a: appends.append(a))

    @app.flow("noop")
    async def noop(ctx: FlowContext) -> None:
        return None

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("noop", owner_id=OWNER)
        await client.wait(execution_id, timeout=10)
    assert [e.type for e in await store.get_events(execution_id)] == [
        "flow:started", "flow:completed",
    ]
    assert appends == []


async def test_log_fields_must_be_json(store: ExecutionStore) -> None:
    app = App()

    @app.flow("bad-log", max_retries=0)
    async def bad_log(ctx: FlowContext) -> None:
        with pytest.raises(ValidationError):
            ctx.log("not json", when=object())  # type: ignore[arg-type]
        ctx.log("fine", n=1)

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("bad-log", owner_id=OWNER)
        done = await client.wait(execution_id, timeout=10)
    assert done.status is ExecutionStatus.COMPLETED
    assert [e.data for e in await store.get_events(execution_id, types=["log"])] == [
        {"message": "fine", "n": 1}
    ]


async def test_a_recovered_execution_continues_its_index_sequence(store: ExecutionStore) -> None:
    app = App()

    @app.flow("flow-a")
    async def flow_a(ctx: FlowContext) -> str:
        await ctx.node("work", _identity, 1)
        return "done"

    dead, lease = await start_running(store, worker_id="killed-worker", timeout_ms=100)
    await wait_for_lease_end(store, lease)
    sweep = RecoveryService(store, worker_id="rec", interval_s=0.05, backoff_base_ms=0)
    assert (await sweep.sweep_once()) is not None
    client = await app.client(store)
    async with running_worker(app, store):
        done = await client.wait(dead.id, timeout=10)
    assert done.status is ExecutionStatus.COMPLETED
    events = await store.get_events(dead.id)
    assert [e.type for e in events] == [
        "flow:started", "execution:recovered", "flow:started", "node:started",
        "node:completed", "flow:completed",
    ]
    assert [e.index for e in events] == list(range(6))
    assert events[1].data["reason"] == "expired_claim"
    assert events[0].attempt == lease.epoch < events[2].attempt
