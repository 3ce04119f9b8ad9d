"""What a worker tells an observer about its process events: claims, run outcomes,
heartbeats and recovery sweeps (docs/architecture.md §13).

The runtime knows only this protocol; `flowexec.metrics.FlowexecMetrics` implements it with
Prometheus metrics, so the runtime never imports `prometheus_client`. Each call is made on
the worker's event loop and must return quickly: it sits on the claim loop's hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from flowexec.model import ExecutionStatus, RecoveryRecord, StartedExecution

if TYPE_CHECKING:
    from flowexec.runtime.recovery import SweepReport


class WorkerObserver(Protocol):
    def claimed(self, started: Sequence[StartedExecution]) -> None:
        """One `claim_and_start` started these executions (at least one)."""

    def run_ended(self, flow_id: str, settled: ExecutionStatus | None, duration_s: float) -> None:
        """A run's task ended: `settled` is the status its final write left the execution in
        (`completed`, `failed`, or `created` when requeued for a retry), or None when it wrote
        no outcome (lease lost, stopped by a client, given back at shutdown)."""

    def leases_renewed(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` (`time.monotonic()`) renewed the worker's leases."""

    async def swept(self, report: SweepReport, records: Sequence[RecoveryRecord]) -> None:
        """This process, the recovery leader, finished a sweep; `records` are what it
        recovered. Must not raise: a failing observer never fails a sweep."""


class NoObserver:
    """The observer of a worker nobody watches: every event is dropped."""

    def claimed(self, started: Sequence[StartedExecution]) -> None:
        return None

    def run_ended(self, flow_id: str, settled: ExecutionStatus | None, duration_s: float) -> None:
        return None

    def leases_renewed(self, sent_at: float) -> None:
        return None

    async def swept(self, report: SweepReport, records: Sequence[RecoveryRecord]) -> None:
        return None


NO_OBSERVER: WorkerObserver = NoObserver()
