"""Failures: retries with backoff, exhausted retries, `Fail`, and outcomes that cannot be stored."""

from __future__ import annotations

import pytest

from flowexec import App, ExecutionNotCompleted, ExecutionStatus, Fail, FlowContext
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, running_worker


def flaky(attempt: int) -> str:
    if attempt == 1:
        raise ConnectionError("upstream hiccup")
    return "ok"


async def test_a_run_that_raises_is_retried_then_succeeds(store: ExecutionStore) -> None:
    app = App()
    attempts: list[int] = []

    @app.flow("flaky", max_retries=3)
    async def flaky_flow(ctx: FlowContext) -> str:
        attempts.append(ctx.attempt)
        return await ctx.node("call", flaky, ctx.attempt)

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("flaky", owner_id=OWNER)
        done = await client.wait(execution_id, timeout=10)

    assert attempts == [1, 2]
    assert done.status is ExecutionStatus.COMPLETED
    assert done.result == "ok"
    assert done.failure_count == 1
    assert done.last_failure_reason is not None
    assert "node 'call' raised ConnectionError: upstream hiccup" in done.last_failure_reason
    assert (done.error_message, done.error_node_id) == (None, None)


async def test_retries_exhausted_fail_with_the_failing_node(store: ExecutionStore) -> None:
    app = App()
    attempts: list[int] = []

    def charge() -> None:
        raise RuntimeError("card declined")

    @app.flow("always-fails", max_retries=2)
    async def always_fails(ctx: FlowContext) -> None:
        attempts.append(ctx.attempt)
        await ctx.node("validate", lambda: None)
        await ctx.node("charge", charge)

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("always-fails", owner_id=OWNER)
        done = await client.wait(execution_id, timeout=10)

    assert attempts == [1, 2, 3], "the first run plus max_retries=2 retries"
    assert done.status is ExecutionStatus.FAILED
    assert done.failure_count == 3
    assert done.error_node_id == "charge"
    assert done.error_message is not None and "card declined" in done.error_message
    assert done.completed_at is not None
    assert await store.get_active_claims() == []
    with pytest.raises(ExecutionNotCompleted, match="card declined") as raised:
        await client.result(execution_id)
    assert (raised.value.status, raised.value.error_node_id) == ("failed", "charge")


async def test_fail_fails_at_once_without_retry(store: ExecutionStore) -> None:
    app = App()
    attempts: list[int] = []

    def check(amount: int) -> None:
        if amount < 0:
            raise Fail(f"negative amount {amount}")

    @app.flow("strict", max_retries=5)
    async def strict(ctx: FlowContext) -> None:
        attempts.append(ctx.attempt)
        assert ctx.integration is not None
        await ctx.node("check", check, ctx.integration["amount"])

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("strict", owner_id=OWNER, integration={"amount": -5})
        done = await client.wait(execution_id, timeout=10)

    assert attempts == [1]
    assert done.status is ExecutionStatus.FAILED
    assert done.failure_count == 0
    assert done.error_message == "negative amount -5"
    assert done.error_node_id == "check"


async def test_fail_outside_any_node_has_no_node(store: ExecutionStore) -> None:
    app = App()

    @app.flow("refuses")
    async def refuses(ctx: FlowContext) -> None:
        raise Fail("not today")

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("refuses", owner_id=OWNER)
        done = await client.wait(execution_id, timeout=10)

    assert (done.status, done.error_message, done.error_node_id) == (
        ExecutionStatus.FAILED, "not today", None
    )


async def test_a_non_json_result_fails_the_execution_and_stores_nothing(
    store: ExecutionStore,
) -> None:
    app = App()
    attempts: list[int] = []

    @app.flow("returns-a-set", max_retries=3)
    async def returns_a_set(ctx: FlowContext) -> object:
        attempts.append(ctx.attempt)
        return {"ids": {1, 2}}

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("returns-a-set", owner_id=OWNER)
        done = await client.wait(execution_id, timeout=10)

    assert attempts == [1], "retrying cannot make a set JSON"
    assert done.status is ExecutionStatus.FAILED
    assert done.result is None
    assert done.error_message is not None and "result is not JSON-serialisable" in (
        done.error_message
    )
