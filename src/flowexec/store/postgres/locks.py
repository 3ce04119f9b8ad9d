"""Leader leases of a PostgreSQL store: a row per lock id, with a fencing term.

A session advisory lock cannot elect a leader behind a transaction pooler (two clients both
get it, and it outlives its holder's disconnect), so a leader holds a row instead, the same
idea as execution claims: renewed by each `try_lock`, taken over only after it lapsed on the
database clock, and with a higher term each time it changes hands. Writes a leader makes as
leader run inside `as_leader`, which checks the term in their own transaction and keeps the
row locked against a takeover until they commit (docs/architecture.md §6).
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

from flowexec.errors import StoreUnavailable
from flowexec.store.limits import MIN_LOCK_ID
from flowexec.store.postgres import queries as Q
from flowexec.store.postgres.connecting import Connection
from flowexec.store.rows import Row

MIGRATION_LOCK_ID = MIN_LOCK_ID - 1
"""Below every recovery lock id, so the migration lock never collides with one."""

_INT32_SPAN = 1 << 32
_INT32_MAX = (1 << 31) - 1


def lock_namespace(table_prefix: str) -> int:
    """A signed 32-bit advisory-lock namespace per installation (table prefix), for the
    transaction-scoped locks (migrations, running limits), which poolers keep correctly."""
    value = zlib.crc32(f"flowexec:{table_prefix}".encode())
    return value - _INT32_SPAN if value > _INT32_MAX else value


Rows = Callable[[str, dict[str, Any]], Awaitable[list[Row]]]


class LeaderLeases:
    """The leases this store holds: lock id -> the term it took each with."""

    def __init__(
        self,
        rows: Rows,
        transaction: Callable[[], AbstractAsyncContextManager[Connection]],
        sql: Callable[[str], str],
    ) -> None:
        self.holder = f"store-{uuid.uuid4().hex}"
        self._rows = rows
        self._transaction = transaction
        self._sql = sql
        self._terms: dict[int, int] = {}

    def term(self, lock_id: int) -> int | None:
        """The term under which this store took `lock_id`, if it believes it holds it."""
        return self._terms.get(lock_id)

    async def try_lock(self, lock_id: int, lease_s: float) -> bool:
        rows = await self._rows(Q.ACQUIRE_LEASE, self._params(lock_id, lease_s=lease_s))
        if not rows:
            self._terms.pop(lock_id, None)
            return False
        self._terms[lock_id] = int(rows[0]["term"])
        return True

    async def unlock(self, lock_id: int) -> bool:
        if lock_id not in self._terms:
            return False
        params = self._params(lock_id)
        del self._terms[lock_id]
        return bool(await self._rows(Q.RELEASE_LEASE, params))

    @asynccontextmanager
    async def as_leader(self, lock_id: int) -> AsyncIterator[bool]:
        if lock_id not in self._terms:
            yield False
            return
        async with self._transaction() as conn:
            cur = await conn.execute(self._sql(Q.LEASE_FENCE), self._params(lock_id))
            yield bool(await cur.fetchall())

    async def close(self) -> None:
        """Give back what is held, so a successor need not wait for the lease to lapse."""
        for lock_id in list(self._terms):
            with suppress(StoreUnavailable):
                await self.unlock(lock_id)

    def _params(self, lock_id: int, **extra: Any) -> dict[str, Any]:
        return {
            "lock_id": lock_id, "holder": self.holder, "term": self._terms.get(lock_id),
            **extra,
        }
