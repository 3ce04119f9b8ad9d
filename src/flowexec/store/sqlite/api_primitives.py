"""The SQLite primitives of API tokens (store/tokens.py) and flow counts (store/flows.py)."""

from __future__ import annotations

from typing import Any

from flowexec.store.flows import FlowCountsFacade
from flowexec.store.rows import Row
from flowexec.store.sqlite import api_queries as Q
from flowexec.store.sqlite.plumbing import SqlitePlumbing
from flowexec.store.tokens import TokenFacade


class SqliteApiPrimitives(TokenFacade, FlowCountsFacade, SqlitePlumbing):
    async def _insert_token(self, params: dict[str, Any]) -> Row | None:
        rows = await self._write_rows(Q.INSERT_TOKEN, {**params, "admin": int(params["admin"])})
        return rows[0] if rows else None

    async def _token_rows(self) -> list[Row]:
        return await self._read_rows(Q.TOKENS)

    async def _token_row(self, token_id: str) -> Row | None:
        rows = await self._read_rows(Q.TOKEN, {"token_id": token_id})
        return rows[0] if rows else None

    async def _delete_token(self, name: str) -> bool:
        return await self._write_count(Q.DELETE_TOKEN, {"name": name}) > 0

    async def _flow_count_rows(self, owner_id: str | None) -> list[Row]:
        return await self._read_rows(Q.FLOW_COUNTS[owner_id is not None], {"owner_id": owner_id})

    async def _finished_count_rows(self, within_s: int) -> list[Row]:
        return await self._read_rows(Q.FINISHED_COUNTS, {"within_s": within_s})

    async def _recovery_count_rows(self, within_s: int) -> list[Row]:
        return await self._read_rows(Q.RECOVERY_COUNT, {"within_s": within_s})
