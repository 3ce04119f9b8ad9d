"""Root executions in one status, across flows or within one (`flowexec ls --status failed`),
once for both backends: the checks and the keyset position here, one statement per backend.

Pages are newest first on (created_at, id), like `get_root_executions`, and served by the
`executions_roots_by_status` index; each root comes with its tree aggregates.
"""

from __future__ import annotations

from flowexec.model import RootExecution, check_id, check_limit, check_status
from flowexec.store.commands import StatusPageQuery
from flowexec.store.cursors import PagePosition, page_cursor
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import root_from_row


class StatusListingFacade(SqlPrimitives):
    async def get_roots_in_status(
        self,
        status: str,
        limit: int = 50,
        after: PagePosition | None = None,
        *,
        flow_id: str | None = None,
    ) -> list[RootExecution]:
        query = StatusPageQuery(
            status=check_status(status).value,
            flow_id=None if flow_id is None else check_id(flow_id, "flow_id"),
            limit=check_limit(limit),
            cursor=page_cursor(after),
        )
        return [root_from_row(row) for row in await self._roots_in_status(query)]
