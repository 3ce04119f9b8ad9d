"""JSON both backends store alike: a number PostgreSQL's jsonb writes differently (1e23 comes
back as 100000000000000000000000) is still the same execution, so creating it again and a
retried parent re-emitting its children never fail; and what a flow hands the store that no
backend can keep is the flow's failure, said plainly, not a store error retried for ever."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowexec import App, ExecutionStatus, FlowContext, new_execution
from flowexec.model import json_normal_form
from flowexec.store.protocol import ExecutionStore
from tests.runtime.helpers import OWNER, running_worker

AWKWARD_NUMBERS = {
    "e23": 1e23,
    "max": 1.7976931348623157e308,
    "e308": 1e308,
    "negative_zero": -0.0,
    "tiny": 5e-324,
    "small": 1.5e-7,
    "long": 10**40,
    "third": 1 / 3,
}

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_numbers = st.recursive(
    finite_floats | st.integers(-(10**30), 10**30),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


async def test_awkward_numbers_are_the_same_execution_again(store: ExecutionStore) -> None:
    execution = new_execution(
        "numbers", OWNER, integration=AWKWARD_NUMBERS,
        external_events=[{"event_name": "e", "payload": list(AWKWARD_NUMBERS.values())}],
    )
    await store.create(execution)
    await store.create(execution)  # the same content again: a no-op, never ExecutionExists
    stored = await store.get(execution.id)
    assert stored is not None
    assert json_normal_form(stored.integration) == json_normal_form(AWKWARD_NUMBERS)


@settings(
    max_examples=30, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(numbers=json_numbers)
async def test_any_finite_numbers_are_the_same_execution_again(
    store: ExecutionStore, numbers: Any
) -> None:
    execution = new_execution("numbers", OWNER, integration={"n": numbers})
    await store.create(execution, start=False)
    await store.create(dataclasses.replace(execution), start=False)


async def test_a_retried_parent_re_emits_a_child_with_awkward_numbers(
    store: ExecutionStore,
) -> None:
    app = App()
    attempts: list[int] = []

    @app.flow("parent", max_retries=2)
    async def parent(ctx: FlowContext) -> str | None:
        if ctx.event is not None:
            return None
        child = await ctx.emit("numbers", AWKWARD_NUMBERS)
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("fail once, after the emit")
        return child

    client = await app.client(store)
    async with running_worker(app, store):
        done = await client.wait(await client.create("parent", owner_id=OWNER), timeout=20)
    assert done.status is ExecutionStatus.COMPLETED, done.error_message or done.last_failure_reason
    assert len(attempts) == 2


async def test_what_no_backend_can_store_fails_the_flow_plainly(store: ExecutionStore) -> None:
    app = App()

    @app.flow("returns-nul", max_retries=0)
    async def returns_nul(ctx: FlowContext) -> Any:
        return {"token": "abc\x00"}

    @app.flow("emits-surrogate", max_retries=0)
    async def emits_surrogate(ctx: FlowContext) -> Any:
        return await ctx.emit("e", {"text": "\ud800"})

    @app.flow("raises-nul", max_retries=0)
    async def raises_nul(ctx: FlowContext) -> Any:
        raise RuntimeError("boom\x00 and \udcff")

    client = await app.client(store)
    async with running_worker(app, store):
        ids = {flow: await client.create(flow, owner_id=OWNER) for flow in app.flow_ids}
        done = {flow: await client.wait(id, timeout=20) for flow, id in ids.items()}
    assert {d.status for d in done.values()} == {ExecutionStatus.FAILED}
    assert "result: a string in it contains a NUL character" in (
        done["returns-nul"].error_message or ""
    )
    assert "payload: a string in it contains a lone surrogate" in (
        done["emits-surrogate"].error_message or ""
    )
    reason = done["raises-nul"].error_message or done["raises-nul"].last_failure_reason or ""
    assert "boom\ufffd and \ufffd" in reason
