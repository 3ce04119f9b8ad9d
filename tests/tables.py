"""Plain SQL reads of the store's tables (docs/architecture.md §2 names), for checks over
thousands of rows. Every call opens its own connection, so that a database restart costs one
failed call."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    id: str
    parent_id: str | None
    status: str
    failure_count: int
    result: Any
    events: Any
    last_failure_reason: str | None
    processing_worker_id: str | None
    depth: int = 0


@dataclass(frozen=True, slots=True)
class RecoveryRow:
    id: int
    execution_id: str
    recovered_by: str
    reason: str
    previous_status: str | None
    previous_worker_id: str | None


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def all_finished(counts: Counter[str], total: int) -> bool:
    """Whether `counts` (by status) are exactly `total` executions, each of them terminal."""
    terminal = counts["completed"] + counts["failed"] + counts["stopped"]
    return sum(counts.values()) == total == terminal


class Tables:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.is_postgres = not url.startswith("sqlite")

    def _query(self, template: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        sql = template.replace("{p}", self.prefix)
        if self.is_postgres:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as pg:
                return [tuple(r) for r in pg.execute(sql.replace("?", "%s"), params).fetchall()]
        path = self.url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=30)
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    async def query(self, template: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._query, template, params)

    async def executions(self) -> dict[str, ExecutionRow]:
        rows = await self.query(
            "SELECT id, parent_execution_id, status, failure_count, result, external_events,"
            " last_failure_reason, processing_worker_id, execution_depth FROM {p}executions"
        )
        return {
            r[0]: ExecutionRow(
                r[0], r[1], r[2], int(r[3]), _json(r[4]), _json(r[5]), r[6], r[7], int(r[8])
            )
            for r in rows
        }

    async def checkpoints(self) -> dict[tuple[str, str], Any]:
        """Every recorded node result, by (execution id, node id)."""
        rows = await self.query(
            "SELECT execution_id, node_id, result FROM {p}execution_checkpoints"
        )
        return {(r[0], r[1]): _json(r[2]) for r in rows}

    async def raw_executions(self) -> dict[str, tuple[Any, ...]]:
        """Every column of every execution, exactly as stored."""
        rows = await self.query("SELECT * FROM {p}executions ORDER BY id")
        return {str(r[0]): r for r in rows}

    async def recoveries(self) -> list[RecoveryRow]:
        rows = await self.query(
            "SELECT id, execution_id, recovered_by_worker, recovery_reason, previous_status,"
            " previous_worker_id FROM {p}execution_recovery ORDER BY id"
        )
        return [RecoveryRow(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def status_counts(self) -> Counter[str]:
        rows = await self.query("SELECT status, count(*) FROM {p}executions GROUP BY status")
        return Counter({str(r[0]): int(r[1]) for r in rows})

    async def held_by(self, worker_id: str) -> list[tuple[str, str]]:
        """(execution id, status) of what `worker_id` holds by an active claim of the current
        epoch: after its SIGKILL, what recovery (or the queue) must take over."""
        return [
            (str(r[0]), str(r[1]))
            for r in await self.query(
                "SELECT e.id, e.status FROM {p}executions e"
                " WHERE e.lease_worker_id = ? AND e.lease_status = 'active'"
                " AND e.processing_worker_id = ?",
                (worker_id, worker_id),
            )
        ]
