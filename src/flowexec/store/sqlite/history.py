"""The SQLite primitives of the history an execution leaves: its event log, checkpoints and
recovery records, and the operations that read or remove history (stats, purge)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import datetime

from flowexec.model import EventBatch
from flowexec.store.event_log import appended_events
from flowexec.store.rows import Row
from flowexec.store.sqlite import queries as Q
from flowexec.store.sqlite.checkpoints import CHECKPOINTS, record_checkpoints
from flowexec.store.sqlite.codec import to_micros
from flowexec.store.sqlite.event_log import log_events
from flowexec.store.sqlite.plumbing import SqlitePlumbing
from flowexec.store.sqlite.queue_stats import QUEUE_STATS


class SqliteHistory(SqlitePlumbing):
    """Mixed into the SQLite store, which supplies the connection and its row helpers."""

    _sql: Callable[[str], str]

    async def _recovery_rows(self, execution_id: str) -> list[Row]:
        return await self._read_rows(Q.RECOVERY_HISTORY, {"id": execution_id})

    # ------------------------------------------------------------ the event log

    async def _event_rows(
        self, execution_id: str, from_index: int, limit: int, types: list[str] | None
    ) -> list[Row]:
        params = {
            "id": execution_id,
            "from_index": from_index,
            "limit": limit,
            "types": None if types is None else json.dumps(types),
        }
        statement = Q.EVENTS_PAGE if types is None else Q.EVENTS_PAGE_OF_TYPES
        return await self._read_rows(statement, params)

    async def _append_events(self, worker_id: str, batches: list[EventBatch]) -> set[str]:
        entries = appended_events(batches)

        def body(conn: sqlite3.Connection, now: int) -> set[str]:
            appended = {
                e["id"]
                for e in entries
                if log_events(
                    conn, self._sql, now, e["id"], e["epoch"], e["events"], fence_worker=worker_id
                )
            }
            record_checkpoints(conn, self._sql, now, [e for e in entries if e["id"] in appended])
            return appended

        return await self._db.write(body)

    async def _checkpoint_rows(self, execution_id: str) -> list[Row]:
        return await self._read_rows(CHECKPOINTS, {"id": execution_id})

    async def wait_for_events(self, execution_id: str, timeout_s: float) -> None:
        """SQLite has no NOTIFY: the subscriber re-reads every `commit_poll_interval_s`."""
        await asyncio.sleep(min(max(float(timeout_s), 0.0), self._options.commit_poll_interval_s))

    # ------------------------------------------------------------ operations

    async def _purge(self, before: datetime, limit: int, statuses: list[str]) -> int:
        params = {"before": to_micros(before), "limit": limit, "statuses": json.dumps(statuses)}

        def body(conn: sqlite3.Connection, now: int) -> int:
            roots = [r["id"] for r in self._rows(conn, Q.PURGE_ROOTS, params)]
            if roots:
                ids = self._rows(conn, Q.TREES_DEEPEST_FIRST, {"roots": json.dumps(roots)})
                conn.executemany(self._sql(Q.DELETE_ONE), [(r["id"],) for r in ids])
            return len(roots)

        return await self._db.write(body)

    async def _count_purgeable(self, before: datetime, statuses: list[str]) -> int:
        params = {"before": to_micros(before), "statuses": json.dumps(statuses)}
        rows = await self._db.read(lambda conn, now: self._rows(conn, Q.PURGEABLE_COUNT, params))
        return int(rows[0]["n"])

    async def _stats_rows(self) -> tuple[list[Row], Row]:
        def body(conn: sqlite3.Connection, now: int) -> tuple[list[Row], Row]:
            counts = self._rows(conn, Q.STATS_BY_STATUS)
            return counts, self._rows(conn, Q.STATS_EXTRA, {"now": now})[0]

        return await self._db.read(body)

    async def _queue_stats_rows(self) -> list[Row]:
        return await self._read_rows(QUEUE_STATS)
