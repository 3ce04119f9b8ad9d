"""The worker registry's statements on PostgreSQL (store/workers.py): one round trip each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from flowexec.store.postgres import worker_queries as Q
from flowexec.store.rows import Row

RunStatement = Callable[[str, dict[str, Any] | None], Awaitable[list[Row]]]
"""The store's way to run one statement template and fetch its rows."""


class PostgresWorkerRegistry:
    def __init__(self, rows: RunStatement) -> None:
        self._rows = rows

    async def register(self, params: dict[str, Any]) -> Row:
        [row] = await self._rows(Q.REGISTER_WORKER, params)
        return row

    async def keep_alive(
        self, worker_id: str, claims: list[tuple[str, int]], lease_ms: int, ttl_ms: int
    ) -> tuple[bool, set[str]]:
        params = {
            "worker_id": worker_id,
            "ttl_ms": ttl_ms,
            "timeout_ms": lease_ms,
            "ids": [c[0] for c in claims],
            "epochs": [c[1] for c in claims],
        }
        [row] = await self._rows(Q.KEEP_ALIVE, params)
        return bool(row["present"]), set(row["renewed"])

    async def remove(self, worker_id: str) -> bool:
        return bool(await self._rows(Q.REMOVE_WORKER, {"worker_id": worker_id}))

    async def remove_dead(self) -> list[str]:
        return [r["id"] for r in await self._rows(Q.REMOVE_DEAD_WORKERS, None)]

    async def workers(self) -> list[Row]:
        return await self._rows(Q.WORKERS, None)

    async def served_flows(self) -> list[Row]:
        return await self._rows(Q.SERVED_FLOWS, None)

    async def queued_by_flow(self) -> list[Row]:
        return await self._rows(Q.QUEUED_BY_FLOW, None)
