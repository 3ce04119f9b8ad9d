"""The overview's counts by flow and status, kept fresh in the background.

Counting by status groups the whole executions table (a million rows take about a quarter of a
second on PostgreSQL), too slow to run on every page view. So the overview reads a cache, and
one loop refreshes every `COUNTS_TTL_S` the entries someone asked for within `KEEP_S`: the
admins' view (all owners) from the start, and each owner's once that owner has looked. Only an
owner's very first view waits for its query. The loop runs for the app's lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from flowexec.errors import FlowexecError
from flowexec.store.protocol import ExecutionStore

log = logging.getLogger("flowexec.dashboard")

COUNTS_TTL_S = 10.0
"""How stale the overview's counts by status may be."""
KEEP_S = 600.0
"""An owner's counts stop being refreshed after this long without a view."""

Counts = dict[str, dict[str, int]]


class CountsCache:
    """Counts per owner (`None`: every owner, as admins see them)."""

    def __init__(self, ttl_s: float = COUNTS_TTL_S, keep_s: float = KEEP_S) -> None:
        self.ttl_s = ttl_s
        self.keep_s = keep_s
        self._counts: dict[str | None, tuple[float, Counts]] = {}
        self._asked: dict[str | None, float] = {}

    async def get(self, store: ExecutionStore, owner_id: str | None) -> Counts:
        """The cached counts; read now on the owner's first view, or when the loop has not
        refreshed them lately (it refreshes only what was asked for)."""
        self._asked[owner_id] = time.monotonic()
        held = self._counts.get(owner_id)
        if held is None or time.monotonic() - held[0] > 2 * self.ttl_s:
            return await self._read(store, owner_id)
        return held[1]

    async def _read(self, store: ExecutionStore, owner_id: str | None) -> Counts:
        counts = await store.get_flow_counts(owner_id=owner_id)
        self._counts[owner_id] = (time.monotonic(), counts)
        return counts

    async def _refresh(self, store: ExecutionStore) -> None:
        now = time.monotonic()
        for owner_id, asked in list(self._asked.items()):
            if now - asked > self.keep_s:
                del self._asked[owner_id]
                self._counts.pop(owner_id, None)
            else:
                await self._read(store, owner_id)

    async def _loop(self, store: ExecutionStore) -> None:
        started = False
        while True:
            try:
                if started:
                    await self._refresh(store)
                else:  # once at the start, so that the first admin view finds them
                    await self._read(store, None)
            except FlowexecError as exc:  # the store is down: keep the last counts, try again
                log.warning("the dashboard could not refresh its counts: %s", exc)
            started = True
            await asyncio.sleep(self.ttl_s)

    @contextlib.asynccontextmanager
    async def refreshing(self, store: ExecutionStore) -> AsyncIterator[None]:
        """Refresh in the background while the block runs; the loop has ended after it."""
        task = asyncio.create_task(self._loop(store), name="dashboard-counts")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
