"""Cron slots and per-flow running limits, once for both backends (docs/architecture.md §15).

A slot is filled by inserting its `(schedule_id, slot_at)` row and the execution together in one
transaction: the primary key lets exactly one caller do it, whichever scheduler, process or host
it runs in, so a leader change can never double a slot.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from flowexec.errors import ValidationError
from flowexec.model import (
    Execution,
    ScheduleSlot,
    check_datetime,
    check_id,
    check_int_range,
    check_new_execution,
)
from flowexec.store import checks
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import Row, encode_new_execution

MAX_RUNNING_LIMIT = 100_000
"""The largest `max_running` a flow may declare."""


def check_running_limits(limits: Mapping[str, int] | None) -> dict[str, int]:
    """`{flow_id: max_running}`, each a flow id and a count of at least 1."""
    if limits is None:
        return {}
    if not isinstance(limits, Mapping):
        raise ValidationError(
            f"running_limits must be a dict of flow ids to counts, not {type(limits).__name__}"
        )
    return {
        check_id(flow, "running_limits flow id"): check_int_range(
            most, f"running_limits[{flow!r}]", 1, MAX_RUNNING_LIMIT
        )
        for flow, most in limits.items()
    }


def slot_from_row(row: Row) -> ScheduleSlot:
    return ScheduleSlot(
        schedule_id=row["schedule_id"],
        slot_at=row["slot_at"],
        execution_id=row["execution_id"],
        created_at=row["created_at"],
    )


class ScheduleSlotsFacade(SqlPrimitives):
    """`fill_schedule_slot` and `get_last_slots` over the backend's two primitives."""

    async def fill_schedule_slot(
        self, schedule_id: str, slot_at: datetime, execution: Execution,
        *, leader: int | None = None,
    ) -> bool:
        check_id(schedule_id, "schedule_id")
        slot = check_datetime(slot_at, "slot_at")
        e = check_new_execution(execution, max_depth=self.max_depth)
        if e.parent_execution_id is not None:
            raise ValidationError("a schedule creates root executions, not children")
        async with self._leading(leader) as leading:
            filled = leading and await self._fill_slot(schedule_id, slot, encode_new_execution(e))
        if filled:
            self._signal_work()
            return True
        return False

    async def get_last_slots(self, schedule_ids: Sequence[str]) -> dict[str, ScheduleSlot]:
        checks.check_sequence(schedule_ids, "get_last_slots takes a sequence of schedule ids")
        ids = [check_id(i, "schedule_id") for i in schedule_ids]
        if not ids:
            return {}
        return {r["schedule_id"]: slot_from_row(r) for r in await self._last_slots(ids)}

    @abstractmethod
    async def _fill_slot(self, schedule_id: str, slot_at: datetime, params: dict[str, Any]) -> bool:
        """One transaction: the slot's row, and only if it was absent the execution (made
        runnable at once, or at its delayed start); True if this call filled the slot."""

    @abstractmethod
    async def _last_slots(self, schedule_ids: list[str]) -> list[Row]:
        """The latest slot row of each schedule that has one."""
