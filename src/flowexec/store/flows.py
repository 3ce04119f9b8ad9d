"""Which flows the store has seen and how many executions of each are in each status."""

from __future__ import annotations

from abc import abstractmethod
from typing import Protocol, runtime_checkable

from flowexec.model import check_id
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import Row


@runtime_checkable
class FlowCounts(Protocol):
    """The flow counts' method of `ExecutionStore`."""

    async def get_flow_counts(self, *, owner_id: str | None = None) -> dict[str, dict[str, int]]:
        """Executions per flow and status (of one owner when given), in one query."""
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

    @abstractmethod
    async def _flow_count_rows(self, owner_id: str | None) -> list[Row]:
        """(`flow_id`, `status`, `n`) rows, by flow and status."""
