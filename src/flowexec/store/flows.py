"""Which flows the store has seen, how many executions of each are in each status, and how
many finished or were recovered lately (the dashboard's overview)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Protocol, runtime_checkable

from flowexec.model import check_id, check_int_range
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import Row


@runtime_checkable
class FlowCounts(Protocol):
    """The flow counts' methods of `ExecutionStore`."""

    async def get_flow_counts(self, *, owner_id: str | None = None) -> dict[str, dict[str, int]]:
        """Executions per flow and status (of one owner when given), in one query."""
        ...

    async def get_finished_counts(self, within_s: int) -> dict[str, int]:
        """Roots finished (completed, failed, stopped) in the last `within_s` seconds, per
        flow, through the index on finished roots."""
        ...

    async def count_recoveries(self, within_s: int) -> int:
        """Recoveries recorded in the last `within_s` seconds."""
        ...


class FlowCountsFacade(SqlPrimitives):
    async def get_flow_counts(self, *, owner_id: str | None = None) -> dict[str, dict[str, int]]:
        """Executions (roots and children) per flow and status, of one owner when given; one
        grouped query."""
        owner = None if owner_id is None else check_id(owner_id, "owner_id")
        counts: dict[str, dict[str, int]] = {}
        for row in await self._flow_count_rows(owner):
            counts.setdefault(row["flow_id"], {})[row["status"]] = int(row["n"])
        return counts

    async def get_finished_counts(self, within_s: int) -> dict[str, int]:
        """Roots that finished in the last `within_s` seconds on the database clock, per flow:
        the dashboard's throughput. Read through the retention index on finished roots, so
        its cost follows the recent finishes, not the table."""
        seconds = check_int_range(within_s, "within_s", 1, 86_400)
        return {
            row["flow_id"]: int(row["n"]) for row in await self._finished_count_rows(seconds)
        }

    async def count_recoveries(self, within_s: int) -> int:
        """Recoveries recorded in the last `within_s` seconds on the database clock, through the
        index on `recovered_at`."""
        seconds = check_int_range(within_s, "within_s", 1, 86_400)
        return int((await self._recovery_count_rows(seconds))[0]["n"])

    @abstractmethod
    async def _recovery_count_rows(self, within_s: int) -> list[Row]:
        """One (`n`) row: recoveries in the last `within_s` seconds."""

    @abstractmethod
    async def _finished_count_rows(self, within_s: int) -> list[Row]:
        """(`flow_id`, `n`) rows of roots finished in the last `within_s` seconds."""

    @abstractmethod
    async def _flow_count_rows(self, owner_id: str | None) -> list[Row]:
        """(`flow_id`, `status`, `n`) rows, by flow and status."""
