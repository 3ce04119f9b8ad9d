"""The PostgreSQL primitives of scheduling (docs/architecture.md §15)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from flowexec.store.commands import ClaimAndStart
from flowexec.store.postgres import queries as Q
from flowexec.store.postgres import scheduling_queries as SQ
from flowexec.store.postgres.connecting import Connection
from flowexec.store.postgres.locks import lock_namespace
from flowexec.store.rows import Row
from flowexec.store.scheduling import ScheduleSlotsFacade


class PostgresScheduling(ScheduleSlotsFacade):
    """Mixed into the PostgreSQL store, which supplies the pool and its channel."""

    _channel: str
    _connection: Callable[[], AbstractAsyncContextManager[Connection]]
    _rows: Callable[[str, dict[str, Any]], Awaitable[list[Row]]]

    async def _claim_within_limits(
        self, command: ClaimAndStart, params: dict[str, Any]
    ) -> list[Row]:
        """`claim_and_start` for a worker with limited flows: the flows' locks, then the
        claim, in one transaction (two round trips)."""
        flows = sorted(command.running_limits)
        limited = {
            **params,
            "namespace": lock_namespace(f"{self.table_prefix}:running"),
            "limit_flows": flows,
            "limit_counts": [command.running_limits[f] for f in flows],
        }
        statement = (
            SQ.CLAIM_AND_START_LIMITED
            if command.flow_ids is None
            else SQ.CLAIM_AND_START_LIMITED_FOR_FLOWS
        )
        async with self._connection() as conn, conn.transaction():
            await conn.execute(self._sql(SQ.LOCK_LIMITED_FLOWS), limited)
            cur = await conn.execute(self._sql(statement), limited)
            return await cur.fetchall()

    async def _fill_slot(self, schedule_id: str, slot_at: datetime, params: dict[str, Any]) -> bool:
        slot = {"schedule_id": schedule_id, "slot_at": slot_at, "id": params["id"]}
        insert = {**params, "start": True, "channel": self._channel}
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(self._sql(SQ.INSERT_SLOT), slot)
            if await cur.fetchone() is None:
                return False
            await conn.execute(self._sql(Q.INSERT_ROOT), insert)
            return True

    async def _last_slots(self, schedule_ids: list[str]) -> list[Row]:
        return await self._rows(SQ.LAST_SLOTS, {"ids": schedule_ids})
