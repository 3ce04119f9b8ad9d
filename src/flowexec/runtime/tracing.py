"""OpenTelemetry spans: one per execution run, one per node inside it.

With the `otel` extra installed, spans go to whatever tracer provider the application set
up; without it, or while no provider is set, every function here does nothing (OpenTelemetry's
own no-op spans cost about 10 µs of CPU per run).
A child execution links to the span of the run that emitted it: the emitting run's W3C
`traceparent` travels in the child's spawning event (the child's stored data), so the link
holds when another process on another machine runs the child. The trace context is not
content: a re-run that emits the same child again finds it equal (`TRACE_CONTEXT_KEY`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flowexec.model import JSON, TRACE_CONTEXT_KEY, Execution

try:
    from opentelemetry import propagate, trace
except ImportError:  # the `otel` extra is not installed
    trace = None  # type: ignore[assignment]
    propagate = None  # type: ignore[assignment]

TRACER_NAME = "flowexec"


def _tracer() -> Any:
    """The flowexec tracer, or None when nothing would record its spans."""
    if trace is None or isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None
    return trace.get_tracer(TRACER_NAME)


class RunSpan:
    """What a run tells its span: how the flow ended."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def failed(self, error: BaseException, node_id: str | None) -> None:
        if self._span is None or trace is None:
            return
        self._span.record_exception(error)
        if node_id is not None:
            self._span.set_attribute("flowexec.error_node_id", node_id)
        description = str(error) or type(error).__name__
        self._span.set_status(trace.Status(trace.StatusCode.ERROR, description))


def _parent_link(execution: Execution) -> list[Any]:
    """A link to the emitting run's span, from the traceparent in the spawning event."""
    if trace is None or propagate is None or not execution.external_events:
        return []
    carried = execution.external_events[0].get(TRACE_CONTEXT_KEY)
    if not isinstance(carried, str):
        return []
    span_context = trace.get_current_span(
        propagate.extract({TRACE_CONTEXT_KEY: carried})
    ).get_span_context()
    return [trace.Link(span_context)] if span_context.is_valid else []


@contextmanager
def run_span(
    execution: Execution, *, attempt: int, epoch: int, worker_id: str
) -> Iterator[RunSpan]:
    """The span of one run of `execution`, current inside the block (so node spans, and the
    children the flow emits, hang off it)."""
    tracer = _tracer()
    if tracer is None or trace is None:
        yield RunSpan()
        return
    attributes: dict[str, str | int] = {
        "flowexec.flow_id": execution.flow_id,
        "flowexec.execution_id": execution.id,
        "flowexec.root_execution_id": execution.root_execution_id,
        "flowexec.attempt": attempt,
        "flowexec.claim_epoch": epoch,
        "flowexec.worker_id": worker_id,
    }
    if execution.parent_execution_id is not None:
        attributes["flowexec.parent_execution_id"] = execution.parent_execution_id
    with tracer.start_as_current_span(
        f"flowexec.run {execution.flow_id}", kind=trace.SpanKind.CONSUMER,
        attributes=attributes, links=_parent_link(execution),
        record_exception=False, set_status_on_exception=False,
    ) as span:
        yield RunSpan(span)


@contextmanager
def node_span(execution: Execution, node_id: str) -> Iterator[None]:
    """The span of one node; an exception that leaves the node marks it failed."""
    tracer = _tracer()
    if tracer is None:
        yield
        return
    attributes = {"flowexec.node_id": node_id, "flowexec.execution_id": execution.id,
                  "flowexec.flow_id": execution.flow_id}
    with tracer.start_as_current_span(f"flowexec.node {node_id}", attributes=attributes):
        yield


def with_trace_context(event: Mapping[str, JSON]) -> dict[str, JSON]:
    """`event`, carrying the current span's traceparent when that span is recorded (a link to
    a span no exporter saw would lead nowhere)."""
    carrier: dict[str, str] = {}
    if trace is not None and propagate is not None and trace.get_current_span().is_recording():
        propagate.inject(carrier)
    out: dict[str, JSON] = dict(event)
    if TRACE_CONTEXT_KEY in carrier:
        out[TRACE_CONTEXT_KEY] = carrier[TRACE_CONTEXT_KEY]
    return out
