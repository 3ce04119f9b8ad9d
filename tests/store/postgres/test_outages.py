"""A server that refuses writes is an outage (`StoreUnavailable`), not a crash of the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

import pytest

from flowexec import StoreUnavailable, new_execution
from flowexec.store.protocol import ExecutionStore

StoreFactory = Callable[..., Awaitable[ExecutionStore]]


def read_only(url: str) -> str:
    """The same server, with sessions that refuse writes (as a standby does)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote('-c default_transaction_read_only=on')}"


async def test_writes_to_a_read_only_server_are_store_unavailable(
    store: ExecutionStore, postgres_url: str, unique_prefix: str
) -> None:
    from flowexec import open_store

    existing = new_execution("flow", "owner")
    await store.create(existing)
    standby = await open_store(read_only(postgres_url), table_prefix=unique_prefix, migrate=False)
    try:
        assert await standby.get(existing.id) == await store.get(existing.id)
        assert (await standby.now()).utcoffset() is not None  # the URL's options and UTC both hold
        with pytest.raises(StoreUnavailable, match="refuses writes"):
            await standby.create(new_execution("flow", "owner"))
        with pytest.raises(StoreUnavailable, match="refuses writes"):
            await standby.claim_next("w", 1000)
    finally:
        await standby.close()
    assert [r.execution.id for r in await store.get_root_executions("flow")] == [existing.id]
