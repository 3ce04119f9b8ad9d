"""The SQLite primitive behind `get_queue_stats` (store/queue_stats.py)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from flowexec.store.queue_stats import QueueStatsFacade
from flowexec.store.rows import Row

QUEUE_STATS = """
    SELECT flow_id,
           count(*) FILTER (WHERE status = 'created' AND available_at <= :now) AS queued,
           count(*) FILTER (WHERE status = 'created' AND available_at > :now) AS delayed,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'paused') AS paused,
           min(available_at) FILTER (WHERE status = 'created' AND available_at <= :now)
               AS oldest_queued_at,
           :now AS measured_at
    FROM (
        SELECT flow_id, status, available_at FROM {p}executions
        WHERE status = 'created' AND available_at IS NOT NULL
        UNION ALL
        SELECT flow_id, status, available_at FROM {p}executions
        WHERE status IN ('running', 'paused')
    )
    GROUP BY flow_id
    ORDER BY flow_id
"""
"""Each branch's predicate is its partial index's, so neither reads finished rows."""


class SqliteQueueStats(QueueStatsFacade):
    async def _queue_stats_rows(self) -> list[Row]:
        return await self._read_rows(QUEUE_STATS)

    @abstractmethod
    async def _read_rows(
        self, template: str, params: dict[str, Any] | None = None
    ) -> list[Row]: ...
