"""OpenTelemetry: a span per run and per node with the ids an operator looks for, a child's
run linked to the run that emitted it through the trace context stored in the child, and
nothing at all when the `otel` extra is missing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

from flowexec import App, ExecutionStatus, Fail, FlowContext
from flowexec.model import TRACE_CONTEXT_KEY, new_execution
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, running_worker, wait_for_status

_EXPORTER = InMemorySpanExporter()


class WhileTesting(Sampler):
    """Records spans only during a test of this module: the SDK's provider can be set only
    once per process, and the tests that run after these must see flowexec untraced."""

    on = False

    def should_sample(
        self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
        attributes: Any = None, links: Any = None, trace_state: Any = None,
    ) -> SamplingResult:
        decision = Decision.RECORD_AND_SAMPLE if self.on else Decision.DROP
        return SamplingResult(decision, attributes if self.on else None)

    def get_description(self) -> str:
        return "WhileTesting"


_SAMPLER = WhileTesting()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans this test ends."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(sampler=_SAMPLER)
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    _SAMPLER.on = True
    try:
        yield _EXPORTER
    finally:
        _SAMPLER.on = False
        _EXPORTER.clear()


def _one(finished: tuple[ReadableSpan, ...], name: str, **attributes: Any) -> ReadableSpan:
    found = [s for s in finished if s.name == name and all(
        (s.attributes or {}).get(k) == v for k, v in attributes.items())]
    assert len(found) == 1, (name, attributes, [(s.name, s.attributes) for s in finished])
    return found[0]


async def test_runs_and_nodes_have_spans_and_a_child_links_to_its_parent(
    store: ExecutionStore, spans: InMemorySpanExporter
) -> None:
    app = App()

    @app.flow("order")
    async def order(ctx: FlowContext) -> str:
        await ctx.node("reserve", lambda: "reserved")
        return await ctx.emit("ship", {"parcel": 1}, flow_id="shipping")

    @app.flow("shipping")
    async def shipping(ctx: FlowContext) -> None:
        await ctx.node("label", lambda: "printed")

    client = await app.client(store)
    async with running_worker(app, store, worker_id="tracer-1"):
        parent_id = await client.create("order", owner_id=OWNER)
        done = await client.wait(parent_id, timeout=10)
        child_id = str(done.result)
        await wait_for_status(client, child_id, ExecutionStatus.COMPLETED)

    finished = spans.get_finished_spans()
    parent_run = _one(finished, "flowexec.run order")
    assert parent_run.attributes is not None
    assert {k: parent_run.attributes[k] for k in (
        "flowexec.flow_id", "flowexec.execution_id", "flowexec.attempt", "flowexec.worker_id"
    )} == {"flowexec.flow_id": "order", "flowexec.execution_id": parent_id,
           "flowexec.attempt": 1, "flowexec.worker_id": "tracer-1"}
    reserve = _one(finished, "flowexec.node reserve")
    assert reserve.parent is not None and reserve.parent.span_id == parent_run.context.span_id

    child_run = _one(finished, "flowexec.run shipping", **{"flowexec.execution_id": child_id})
    assert child_run.context.trace_id != parent_run.context.trace_id  # a trace of its own...
    [link] = child_run.links  # ...linked to the run that emitted it
    assert (link.context.trace_id, link.context.span_id) == (
        parent_run.context.trace_id, parent_run.context.span_id
    )
    label = _one(finished, "flowexec.node label")
    assert label.context.trace_id == child_run.context.trace_id
    # The link came from the child's stored data, which any process can read.
    child = await client.get(child_id)
    assert child.external_events is not None
    carried = child.external_events[0][TRACE_CONTEXT_KEY]
    assert isinstance(carried, str)
    assert carried.startswith(
        f"00-{parent_run.context.trace_id:032x}-{parent_run.context.span_id:016x}-"
    )


async def test_a_failed_run_and_its_node_are_marked_failed(
    store: ExecutionStore, spans: InMemorySpanExporter
) -> None:
    app = App()

    def explode() -> None:
        raise Fail("card declined")

    @app.flow("pay")
    async def pay(ctx: FlowContext) -> None:
        await ctx.node("charge", explode)

    client = await app.client(store)
    async with running_worker(app, store):
        execution_id = await client.create("pay", owner_id=OWNER)
        await wait_for_status(client, execution_id, ExecutionStatus.FAILED)

    finished = spans.get_finished_spans()
    run = _one(finished, "flowexec.run pay")
    assert run.status.status_code is trace.StatusCode.ERROR
    assert run.status.description == "card declined"
    assert run.attributes is not None and run.attributes["flowexec.error_node_id"] == "charge"
    node = _one(finished, "flowexec.node charge")
    assert node.status.status_code is trace.StatusCode.ERROR


def test_the_trace_context_is_not_content() -> None:
    """A re-run emits the same child under another trace: the store must find it equal."""
    parent = new_execution("f", "o")
    first_attempt = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    second_attempt = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    first = new_execution("f", "o", parent=parent, id="EX-child", external_events=[
        {"event_name": "e", "payload": 1, TRACE_CONTEXT_KEY: first_attempt}
    ])
    again = new_execution("f", "o", parent=parent, id="EX-child", external_events=[
        {"event_name": "e", "payload": 1, TRACE_CONTEXT_KEY: second_attempt}
    ])
    other = new_execution("f", "o", parent=parent, id="EX-child", external_events=[
        {"event_name": "e", "payload": 2}
    ])
    assert first.content_differences(again) == []
    assert first.content_differences(other) == ["external_events"]


def test_without_the_extra_tracing_does_nothing() -> None:
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"  # as if it were not installed
        "from flowexec.model import new_execution\n"
        "from flowexec.runtime import tracing\n"
        "e = new_execution('f', 'o')\n"
        "with tracing.run_span(e, attempt=1, epoch=1, worker_id='w') as span:\n"
        "    with tracing.node_span(e, 'n'):\n"
        "        span.failed(RuntimeError('x'), 'n')\n"
        "        print(tracing.with_trace_context({'event_name': 'e', 'payload': None}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'event_name': 'e', 'payload': None}"


async def test_an_unrecorded_run_stores_no_trace_context(store: ExecutionStore) -> None:
    """Outside the tests above nothing is sampled: children carry no traceparent."""
    app = App()

    @app.flow("order")
    async def order(ctx: FlowContext) -> str:
        return await ctx.emit("ship", None, flow_id="order-child")

    @app.flow("order-child")
    async def child_flow(ctx: FlowContext) -> None:
        return None

    client = await app.client(store)
    async with running_worker(app, store):
        parent_id = await client.create("order", owner_id=OWNER)
        done = await client.wait(parent_id, timeout=10)
    child = await client.get(str(done.result))
    assert child.external_events == [{"event_name": "ship", "payload": None}]
