"""Runtime objects take an open store or a URL; whoever opened a store closes it."""

from __future__ import annotations

from typing import Any

from flowexec.errors import ConfigError
from flowexec.store import open_store
from flowexec.store.protocol import ExecutionStore


async def use_store(
    store_or_url: ExecutionStore | str | None, *, table_prefix: str, **options: Any
) -> tuple[ExecutionStore, bool]:
    """The store to use, and whether the caller opened it (and so must close it)."""
    if store_or_url is None or isinstance(store_or_url, str):
        return await open_store(store_or_url, table_prefix=table_prefix, **options), True
    if isinstance(store_or_url, ExecutionStore):
        return store_or_url, False
    raise ConfigError(
        f"expected an ExecutionStore or a database URL, not {type(store_or_url).__name__}"
    )
