"""Per-flow queue figures for monitoring, once for every SQL backend.

`get_queue_stats` reads only unfinished executions, through the partial indexes the queue and
recovery already keep (`executions_runnable`, `executions_recoverable`), so its cost follows the
work waiting and running, never the history behind it (docs/architecture.md §13).
"""

from __future__ import annotations

from flowexec.model import FlowQueueStats
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import Row


def queue_stats_from_row(row: Row) -> FlowQueueStats:
    return FlowQueueStats(
        flow_id=row["flow_id"],
        queued=int(row["queued"]),
        delayed=int(row["delayed"]),
        running=int(row["running"]),
        paused=int(row["paused"]),
        oldest_queued_at=row["oldest_queued_at"],
        measured_at=row["measured_at"],
    )


class QueueStatsFacade(SqlPrimitives):
    async def get_queue_stats(self) -> list[FlowQueueStats]:
        """One entry per flow with queued, delayed, running or paused executions, by flow id."""
        return [queue_stats_from_row(r) for r in await self._queue_stats_rows()]
