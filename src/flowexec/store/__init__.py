"""Execution stores: the protocol and `open_store`, which picks a backend from the URL."""

from __future__ import annotations

from typing import Any

from flowexec.store.protocol import ExecutionStore
from flowexec.store.urls import resolve, scheme_of

__all__ = ["ExecutionStore", "open_store"]


async def open_store(
    url: str | None = None,
    *,
    table_prefix: str = "flowexec_",
    migrate: bool = True,
    **options: Any,
) -> ExecutionStore:
    """Open (and by default migrate) the store a URL names.

    `postgresql://…` / `postgres://…` open PostgreSQL; `sqlite:///path` opens SQLite. Without a
    URL: `FLOWEXEC_DATABASE_URL`, else `sqlite:///flowexec.db`. Backend options (pool sizes,
    `max_depth`) pass through.
    """
    url = resolve(url)
    if scheme_of(url) == "postgres":
        from flowexec.store.postgres import PostgresExecutionStore

        return await PostgresExecutionStore.open(
            url, table_prefix=table_prefix, migrate=migrate, **options
        )
    from flowexec.store.sqlite import SqliteExecutionStore

    return await SqliteExecutionStore.open(
        url, table_prefix=table_prefix, migrate=migrate, **options
    )
