"""Recovery locks of a PostgreSQL store, held on one dedicated connection.

A session-level advisory lock belongs to the connection that took it, and a pool hands out a
different one each time, so the locks live on their own connection for as long as any is held
(docs/architecture.md §9). Keys are namespaced per installation (table prefix).
"""

from __future__ import annotations

import asyncio
import zlib
from contextlib import suppress
from typing import Any

import psycopg

from flowexec.errors import StoreUnavailable
from flowexec.store.limits import MIN_LOCK_ID
from flowexec.store.postgres import queries as Q
from flowexec.store.postgres.connecting import OPERATIONAL_ERRORS, Connection, failed

MIGRATION_LOCK_ID = MIN_LOCK_ID - 1
"""Below every recovery lock id, so the migration lock never collides with one."""

_INT32_SPAN = 1 << 32
_INT32_MAX = (1 << 31) - 1


def lock_namespace(table_prefix: str) -> int:
    """A signed 32-bit advisory-lock namespace per installation (table prefix)."""
    value = zlib.crc32(f"flowexec:{table_prefix}".encode())
    return value - _INT32_SPAN if value > _INT32_MAX else value


class RecoveryLockSession:
    """The connection that holds this store's recovery locks, and which locks it holds."""

    def __init__(self, url: str, connect_kwargs: dict[str, Any], namespace: int) -> None:
        self._url = url
        self._connect_kwargs = connect_kwargs
        self._namespace = namespace
        self._conn: Connection | None = None
        self._held: set[int] = set()
        self._mutex = asyncio.Lock()

    async def try_lock(self, lock_id: int) -> bool:
        async with self._mutex:
            if lock_id in self._held:
                # Still ours only while the session that took it lives.
                conn = await self._connection()
                try:
                    await conn.execute("SELECT 1")
                    return True
                except OPERATIONAL_ERRORS:
                    await self._drop_connection()
            ok = await self._run(Q.TRY_LOCK, lock_id)
            if ok:
                self._held.add(lock_id)
            return ok

    async def unlock(self, lock_id: int) -> bool:
        async with self._mutex:
            if lock_id not in self._held:
                return False
            self._held.discard(lock_id)
            try:
                ok = await self._run(Q.UNLOCK, lock_id)
            except StoreUnavailable:
                return True  # the session is gone, and the lock with it
            if not self._held:
                await self._drop_connection()
            return ok

    async def close(self) -> None:
        async with self._mutex:
            await self._drop_connection()

    async def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._url, **self._connect_kwargs
                )
            except OPERATIONAL_ERRORS as exc:
                raise failed(self._url, exc) from exc
        return self._conn

    async def _drop_connection(self) -> None:
        self._held.clear()
        if self._conn is not None:
            with suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    async def _run(self, statement: str, lock_id: int) -> bool:
        conn = await self._connection()
        try:
            cur = await conn.execute(
                statement, {"namespace": self._namespace, "lock_id": lock_id}
            )
            row = await cur.fetchone()
        except OPERATIONAL_ERRORS as exc:
            await self._drop_connection()  # the server dropped the session and its locks
            raise failed(self._url, exc) from exc
        return bool(row and row["ok"])
