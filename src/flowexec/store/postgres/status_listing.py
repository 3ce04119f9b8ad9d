"""PostgreSQL statements of `get_roots_in_status` (store/status_listing.py)."""

from __future__ import annotations

from flowexec.store.postgres.queries import EXECUTION_COLUMNS, ROOT_PAGE_AGGREGATES


def _page(where: str) -> str:
    return f"""
    WITH page AS (
        SELECT {EXECUTION_COLUMNS} FROM {{p}}executions
        WHERE status = %(status)s AND parent_execution_id IS NULL {where}
        ORDER BY created_at DESC, id DESC
        LIMIT %(limit)s
    )
    {ROOT_PAGE_AGGREGATES}
    """


_AFTER = "AND (created_at, id) < (%(after_created)s, %(after_id)s)"
_FLOW = "AND flow_id = %(flow_id)s"
ROOTS_IN_STATUS = {
    (False, False): _page(""),
    (True, False): _page(_AFTER),
    (False, True): _page(_FLOW),
    (True, True): _page(f"{_AFTER} {_FLOW}"),
}
"""Keyed by (has cursor, has flow filter)."""
