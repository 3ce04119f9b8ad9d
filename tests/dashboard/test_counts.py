"""The overview's counts: read on an owner's first view, then refreshed by the loop alone."""

from __future__ import annotations

import asyncio

from flowexec.dashboard.counts import CountsCache
from flowexec.runtime.client import Client
from flowexec.store.protocol import ExecutionStore


async def test_the_loop_refreshes_what_was_asked_for_and_forgets_the_rest(
    store: ExecutionStore,
) -> None:
    cache = CountsCache(ttl_s=0.05, keep_s=3600)
    client = Client(store)
    async with cache.refreshing(store):
        assert await cache.get(store, "alice") == {}
        await client.create("f", owner_id="alice")
        while await cache.get(store, "alice") != {"f": {"created": 1}}:
            await asyncio.sleep(0.02)  # a refresh by the loop, not by this read
        while await cache.get(store, None) != {"f": {"created": 1}}:
            await asyncio.sleep(0.02)  # read at the start, then within two refresh periods

        cache.keep_s = 0.0  # nobody looked lately: the next refresh drops every entry
        while cache._counts:
            await asyncio.sleep(0.02)


async def test_an_entry_the_loop_does_not_refresh_is_read_again_when_stale(
    store: ExecutionStore,
) -> None:
    cache = CountsCache(ttl_s=0.01)  # no loop running: nothing refreshes it
    assert await cache.get(store, None) == {}
    await Client(store).create("f", owner_id="bob")
    await asyncio.sleep(0.05)
    assert await cache.get(store, None) == {"f": {"created": 1}}
