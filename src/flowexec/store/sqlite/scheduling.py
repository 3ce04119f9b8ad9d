"""The SQLite primitives of scheduling (docs/architecture.md §15)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from flowexec.store.rows import Row
from flowexec.store.scheduling import ScheduleSlotsFacade
from flowexec.store.sqlite import queries as Q
from flowexec.store.sqlite import scheduling_queries as SQ
from flowexec.store.sqlite.codec import to_micros
from flowexec.store.sqlite.plumbing import SqlitePlumbing


class SqliteScheduling(ScheduleSlotsFacade, SqlitePlumbing):
    """Mixed into the SQLite store, which supplies the connection and its row helpers."""

    @staticmethod
    def _pick_statement(limits: dict[str, int], flow_ids: list[str] | None) -> tuple[str, str]:
        """The pick for `claim_and_start` with running limits, and its `:limits` value."""
        pick = SQ.PICK_WITHIN_LIMITS if flow_ids is None else SQ.PICK_WITHIN_LIMITS_FOR_FLOWS
        return pick, json.dumps(sorted(limits.items()))

    async def _fill_slot(self, schedule_id: str, slot_at: datetime, params: dict[str, Any]) -> bool:
        values = {
            **params,
            "created_at": to_micros(params["created_at"]),
            "updated_at": to_micros(params["updated_at"]),
            "run_at": None if params["run_at"] is None else to_micros(params["run_at"]),
            "start": True,
        }
        slot = {"schedule_id": schedule_id, "slot_at": to_micros(slot_at), "id": params["id"]}

        def body(conn: sqlite3.Connection, now: int) -> bool:
            if not self._rows(conn, SQ.INSERT_SLOT, {**slot, "now": now}):
                return False
            self._rows(conn, Q.INSERT_ROOT, {**values, "now": now})
            return True

        return await self._db.write(body)

    async def _last_slots(self, schedule_ids: list[str]) -> list[Row]:
        return await self._read_rows(SQ.LAST_SLOTS, {"ids": json.dumps(schedule_ids)})
