"""Queue gauges computed at scrape time from the store, behind a short cache.

A scrape reads the cached figures; `refresh` asks the store again only when they are older
than `max_age_s`, and concurrent scrapes share one query. `get_queue_stats` reads unfinished
executions through partial indexes, so even a cache miss never scans the history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from flowexec.model import FlowQueueStats
from flowexec.store.protocol import ExecutionStore

log = logging.getLogger("flowexec.metrics")

IN_PROGRESS = ("running", "paused")


class QueueGauges(Collector):
    """Per-flow queue depth, delayed work, oldest queued age and runs in progress, as the
    database says; flows seen once stay at 0 afterwards rather than vanishing."""

    def __init__(
        self,
        store: ExecutionStore,
        *,
        max_age_s: float,
        flows: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_age_s = max_age_s
        self._clock = clock
        self._known_flows = set(flows)
        self._stats: dict[str, FlowQueueStats] = {}
        self._read_at: float | None = None
        self._up = False
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the store again if the cached figures are older than `max_age_s`. A store
        that fails keeps the last figures and sets `flowexec_queue_stats_up` to 0."""
        async with self._lock:
            if self._read_at is not None and self._clock() - self._read_at < self._max_age_s:
                return
            try:
                stats = await self._store.get_queue_stats()
            except Exception as exc:
                self._up = False
                log.warning("queue metrics not refreshed: %s", exc)
            else:
                self._stats = {s.flow_id: s for s in stats}
                self._known_flows.update(self._stats)
                self._up = True
            self._read_at = self._clock()

    def expire(self) -> None:
        """Make the next `refresh` read the store, whatever the cached figures' age."""
        self._read_at = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "flowexec_queue_depth", "Executions runnable now, per flow (database).",
            labels=["flow_id"],
        )
        delayed = GaugeMetricFamily(
            "flowexec_queue_delayed",
            "Created executions waiting for a backoff or held by a claim, per flow (database).",
            labels=["flow_id"],
        )
        oldest = GaugeMetricFamily(
            "flowexec_queue_oldest_age_seconds",
            "How long the oldest runnable execution has waited, per flow (database clock).",
            labels=["flow_id"],
        )
        in_progress = GaugeMetricFamily(
            "flowexec_executions_in_progress",
            "Running and paused executions, per flow and status (database).",
            labels=["flow_id", "status"],
        )
        for flow_id in sorted(self._known_flows):
            stats = self._stats.get(flow_id)
            depth.add_metric([flow_id], stats.queued if stats else 0)
            delayed.add_metric([flow_id], stats.delayed if stats else 0)
            oldest.add_metric([flow_id], stats.oldest_queued_age_s if stats else 0.0)
            in_progress.add_metric([flow_id, "running"], stats.running if stats else 0)
            in_progress.add_metric([flow_id, "paused"], stats.paused if stats else 0)
        yield from (depth, delayed, oldest, in_progress)
        yield GaugeMetricFamily(
            "flowexec_queue_stats_up",
            "1 if the last read of the queue figures from the store succeeded.",
            value=1 if self._up else 0,
        )
