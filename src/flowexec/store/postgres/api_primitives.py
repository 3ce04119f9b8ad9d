"""The PostgreSQL primitives of API tokens (store/tokens.py) and flow counts (store/flows.py)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from flowexec.store.flows import FlowCountsFacade
from flowexec.store.postgres import api_queries as Q
from flowexec.store.rows import Row
from flowexec.store.tokens import TokenFacade


class PostgresApiPrimitives(TokenFacade, FlowCountsFacade):
    @abstractmethod
    async def _rows(self, template: str, params: dict[str, Any] | None = None) -> list[Row]:
        """One statement's rows (the store's plumbing)."""

    @abstractmethod
    async def _count(self, template: str, params: dict[str, Any] | None = None) -> int:
        """One statement's row count (the store's plumbing)."""

    async def _insert_token(self, params: dict[str, Any]) -> Row | None:
        rows = await self._rows(Q.INSERT_TOKEN, params)
        return rows[0] if rows else None

    async def _token_rows(self) -> list[Row]:
        return await self._rows(Q.TOKENS)

    async def _token_row(self, token_id: str) -> Row | None:
        rows = await self._rows(Q.TOKEN, {"token_id": token_id})
        return rows[0] if rows else None

    async def _delete_token(self, name: str) -> bool:
        return await self._count(Q.DELETE_TOKEN, {"name": name}) > 0

    async def _flow_count_rows(self, owner_id: str | None) -> list[Row]:
        return await self._rows(Q.FLOW_COUNTS[owner_id is not None], {"owner_id": owner_id})

    async def _finished_count_rows(self, within_s: int) -> list[Row]:
        return await self._rows(Q.FINISHED_COUNTS, {"within_s": within_s})

    async def _recovery_count_rows(self, within_s: int) -> list[Row]:
        return await self._rows(Q.RECOVERY_COUNT, {"within_s": within_s})
