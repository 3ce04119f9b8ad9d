"""Prometheus metrics for flowexec workers and servers (the `metrics` extra).

See docs/architecture.md §13 for what is counted where and how to mount `/metrics`.
"""

from __future__ import annotations

from flowexec.metrics.exposition import exposition
from flowexec.metrics.process import DEFAULT_QUEUE_CACHE_S, FlowexecMetrics
from flowexec.metrics.queue import QueueGauges
from flowexec.metrics.server import serve_metrics

__all__ = [
    "DEFAULT_QUEUE_CACHE_S",
    "FlowexecMetrics",
    "QueueGauges",
    "exposition",
    "serve_metrics",
]
