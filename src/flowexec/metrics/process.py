"""`FlowexecMetrics`: one Prometheus registry with flowexec's metrics (docs/architecture.md §13).

Two kinds of figures, each read where it is true:
- process events, counted by the process in which they happen (a worker's claims, run
  outcomes, heartbeats and sweeps; a client's or the API's creations; the API's event-stream
  subscribers). Each event is counted once, by one process, so `sum by (flow_id)` over all
  processes gives the installation's totals; a restart resets them, which `rate()` handles;
- the state of the queue, which no single process knows: read from the store at scrape time
  (`QueueGauges`), identical in every process that exposes it.

Each `FlowexecMetrics` has a registry of its own, so two workers in one process never share
counters; nothing is registered in prometheus_client's global registry.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flowexec.errors import ConfigError
from flowexec.metrics.exposition import exposition
from flowexec.metrics.queue import QueueGauges
from flowexec.model import ExecutionStatus, RecoveryRecord, StartedExecution
from flowexec.store.protocol import ExecutionStore

if TYPE_CHECKING:
    from flowexec.runtime.recovery import SweepReport

log = logging.getLogger("flowexec.metrics")

Metric = TypeVar("Metric", Counter, Histogram)

DEFAULT_QUEUE_CACHE_S = 5.0
"""How long queue figures read from the store serve scrapes before the store is asked again."""

RUN_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
                       3600, math.inf)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, math.inf)
SWEEP_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, math.inf)

OUTCOME_LABELS = {
    ExecutionStatus.COMPLETED: "completed",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.CREATED: "retried",
}
UNSETTLED = "interrupted"
"""The outcome label of a run that wrote nothing: lease lost, stopped, or given back."""


class FlowexecMetrics:
    """The metrics of one worker or server process; also the Worker's observer
    (`runtime/observer.py`)."""

    def __init__(
        self,
        store: ExecutionStore | None = None,
        *,
        flows: Iterable[str] = (),
        queue_cache_s: float = DEFAULT_QUEUE_CACHE_S,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`store`: where the queue gauges are read (none without it); `flows`: flow ids
        reported from the start, at 0, so that a dashboard sees them before any work."""
        if (
            isinstance(queue_cache_s, bool)
            or not isinstance(queue_cache_s, int | float)
            or not math.isfinite(queue_cache_s)
            or queue_cache_s <= 0
        ):
            raise ConfigError(
                f"queue_cache_s must be a positive number of seconds, not {queue_cache_s!r}"
            )
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        flow_ids = sorted(set(flows))
        self.queue = (
            None if store is None
            else QueueGauges(store, max_age_s=float(queue_cache_s), flows=flow_ids)
        )
        if self.queue is not None:
            self.registry.register(self.queue)
        self._store = store
        self._define(flow_ids)
        self._held = 0
        self._leases_renewed_at: float | None = None
        self._children: dict[tuple[int, tuple[str, ...]], Counter | Histogram] = {}

    def _define(self, flow_ids: list[str]) -> None:
        r = self.registry

        def per_flow(name: str, what: str) -> Counter:
            counter = Counter(name, what, ["flow_id"], registry=r)
            for flow_id in flow_ids:
                counter.labels(flow_id)
            return counter

        self.created = per_flow("flowexec_executions_created", "Executions created here.")
        self.started = per_flow("flowexec_executions_started", "Executions this worker started.")
        self.completed = per_flow(
            "flowexec_executions_completed", "Runs of this worker that completed."
        )
        self.failed = per_flow(
            "flowexec_executions_failed", "Runs of this worker that failed for good."
        )
        self.retried = per_flow(
            "flowexec_executions_retried", "Runs of this worker requeued to be tried again."
        )
        self.recovered = Counter(
            "flowexec_executions_recovered",
            "Executions of dead workers this process's recovery sweeps put back or gave up.",
            ["flow_id", "reason"], registry=r,
        )
        self.run_seconds = Histogram(
            "flowexec_run_duration_seconds",
            "Wall time of a run in this worker, from its claim to its final write.",
            ["flow_id", "outcome"], buckets=RUN_SECONDS_BUCKETS, registry=r,
        )
        self.active_claims = Gauge(
            "flowexec_active_claims", "Leases this worker holds: runs in progress.", registry=r
        )
        self.claim_batch_size = Histogram(
            "flowexec_claim_batch_size",
            "Executions started per claim_and_start that started any.",
            buckets=BATCH_SIZE_BUCKETS, registry=r,
        )
        self.heartbeat_lag = Gauge(
            "flowexec_heartbeat_lag_seconds",
            "Seconds since this worker's leases were last granted or renewed (0 holding none).",
            registry=r,
        )
        self.heartbeat_lag.set_function(self._heartbeat_lag_s)
        self.sweeps = Counter(
            "flowexec_recovery_sweeps", "Recovery sweeps this process ran as the leader.",
            registry=r,
        )
        self.sweep_seconds = Histogram(
            "flowexec_recovery_sweep_duration_seconds", "How long each recovery sweep took.",
            buckets=SWEEP_SECONDS_BUCKETS, registry=r,
        )
        self.sse_subscribers = Gauge(
            "flowexec_sse_subscribers", "Event streams open on this server.", registry=r
        )

    # ------------------------------------------------------------ exposition

    async def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for a scrape with this `Accept` header, and its content type;
        refreshes the queue figures first if their cache is stale."""
        if self.queue is not None:
            await self.queue.refresh()
        return exposition(self.registry, accept)

    # ------------------------------------------------------------ what the API records

    def record_created(self, flow_id: str, count: int = 1) -> None:
        self._child(self.created, flow_id).inc(count)

    @contextmanager
    def sse_subscriber(self) -> Iterator[None]:
        """Counts one open event stream for as long as the block runs."""
        self.sse_subscribers.inc()
        try:
            yield
        finally:
            self.sse_subscribers.dec()

    # ------------------------------------------------------------ the worker's observer

    def claimed(self, started: Sequence[StartedExecution]) -> None:
        if self._held == 0:
            self._leases_renewed_at = time.monotonic()  # the claim granted them just now
        self._held += len(started)
        self.active_claims.set(self._held)
        self.claim_batch_size.observe(len(started))
        for item in started:
            self._child(self.started, item.execution.flow_id).inc()

    def run_ended(self, flow_id: str, settled: ExecutionStatus | None, duration_s: float) -> None:
        self._held -= 1
        self.active_claims.set(self._held)
        outcome = UNSETTLED if settled is None else OUTCOME_LABELS.get(settled, UNSETTLED)
        self._child(self.run_seconds, flow_id, outcome).observe(duration_s)
        if settled is ExecutionStatus.COMPLETED:
            self._child(self.completed, flow_id).inc()
        elif settled is ExecutionStatus.FAILED:
            self._child(self.failed, flow_id).inc()
        elif settled is ExecutionStatus.CREATED:
            self._child(self.retried, flow_id).inc()

    def leases_renewed(self, sent_at: float) -> None:
        self._leases_renewed_at = sent_at

    async def swept(self, report: SweepReport, records: Sequence[RecoveryRecord]) -> None:
        self.sweeps.inc()
        self.sweep_seconds.observe(report.duration_s)
        flows = await self._flows_of(records)
        for record in records:
            flow_id = flows.get(record.execution_id, "")
            self.recovered.labels(flow_id, record.recovery_reason).inc()

    async def _flows_of(self, records: Sequence[RecoveryRecord]) -> dict[str, str]:
        """The flow of each recovered execution (records do not carry it); "" for one that
        is gone or a store that fails now: the sweep is done either way."""
        flows: dict[str, str] = {}
        if self._store is None:
            return flows
        for record in records:
            try:
                execution = await self._store.get(record.execution_id)
            except Exception as exc:
                log.warning("recovered executions' flows unknown: %s", exc)
                return flows
            if execution is not None:
                flows[record.execution_id] = execution.flow_id
        return flows

    def _child(self, metric: Metric, *labels: str) -> Metric:
        """`metric.labels(*labels)`, kept: one dictionary lookup instead of prometheus-client's
        locked one on every event of the claim loop (docs/benchmarks.md, "Metrics")."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return cast(Metric, child)

    def _heartbeat_lag_s(self) -> float:
        renewed_at = self._leases_renewed_at
        if renewed_at is None or self._held <= 0:
            return 0.0
        return max(time.monotonic() - renewed_at, 0.0)
