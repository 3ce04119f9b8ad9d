"""The worker registry's statements on SQLite (store/workers.py): one transaction each."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from flowexec.store.rows import Row
from flowexec.store.sqlite import queries as Q
from flowexec.store.sqlite import worker_queries as W

if TYPE_CHECKING:
    from flowexec.store.sqlite.backend import SqliteBackend


class SqliteWorkerRegistry:
    def __init__(self, store: SqliteBackend) -> None:
        self._store = store

    async def register(self, params: dict[str, Any]) -> Row:
        def body(conn: sqlite3.Connection, now: int) -> Row:
            [row] = self._store._rows(conn, W.REGISTER_WORKER, {**params, "now": now})
            self._served(conn, now, params["worker_id"], params["flow_ids"])
            return row

        return await self._store._db.write(body)

    async def keep_alive(
        self, worker_id: str, claims: list[tuple[str, int]], lease_ms: int, ttl_ms: int
    ) -> tuple[bool, set[str]]:
        def body(conn: sqlite3.Connection, now: int) -> tuple[bool, set[str]]:
            touch = {"worker_id": worker_id, "ttl_ms": ttl_ms, "now": now}
            present = conn.execute(self._store._sql(W.TOUCH_WORKER), touch).rowcount > 0
            if not claims:
                return present, set()
            extend = {
                "worker_id": worker_id,
                "timeout_ms": lease_ms,
                "pairs": json.dumps([list(c) for c in claims]),
                "now": now,
            }
            renewed = {r["execution_id"] for r in self._store._rows(conn, Q.EXTEND, extend)}
            return present, renewed

        return await self._store._db.write(body)

    async def remove(self, worker_id: str) -> bool:
        return bool(await self._removed(W.REMOVE_WORKER, {"worker_id": worker_id}))

    async def remove_dead(self) -> list[str]:
        return sorted(await self._removed(W.REMOVE_DEAD_WORKERS, {}))

    async def workers(self) -> list[Row]:
        return await self._store._read_rows(W.WORKERS)

    async def served_flows(self) -> list[Row]:
        return await self._store._read_rows(W.SERVED_FLOWS)

    async def queued_by_flow(self) -> list[Row]:
        return await self._store._read_rows(W.QUEUED_BY_FLOW)

    async def _removed(self, statement: str, params: dict[str, Any]) -> list[str]:
        """Remove workers; the flows they served were served until now."""

        def body(conn: sqlite3.Connection, now: int) -> list[str]:
            removed = self._store._rows(conn, statement, {**params, "now": now})
            for row in removed:
                self._served(conn, now, row["id"], json.dumps(row["flow_ids"]))
            return [row["id"] for row in removed]

        return await self._store._db.write(body)

    def _served(self, conn: sqlite3.Connection, now: int, worker_id: str, flows: str) -> None:
        params = {"now": now, "worker_id": worker_id, "flow_ids": flows}
        conn.execute(self._store._sql(W.SERVED_BY), params)
