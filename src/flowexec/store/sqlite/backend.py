"""The SQLite store's plumbing: its connection thread, file locks, statements and migrations.

Below the primitives (store/sqlite/store.py and its mixins), which run every statement through
`_rows`, `_read_rows` and `_write_rows` here. Every call is one transaction on the store's own
thread (store/sqlite/connection.py).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

from flowexec.model import DEFAULT_MAX_DEPTH
from flowexec.store import migrations
from flowexec.store.base import SqlExecutionStore
from flowexec.store.rows import Row
from flowexec.store.sqlite import queries as Q
from flowexec.store.sqlite.codec import from_micros, split_statements
from flowexec.store.sqlite.connection import SqliteConnection
from flowexec.store.sqlite.locks import RecoveryFileLocks
from flowexec.store.sqlite.options import SqliteOptions
from flowexec.store.sqlite.plumbing import SqlitePlumbing
from flowexec.store.sqlite.workers import SqliteWorkerRegistry
from flowexec.store.urls import parse_sqlite_url

log = logging.getLogger("flowexec.store.sqlite")


class SqliteBackend(SqlExecutionStore, SqlitePlumbing):
    backend: ClassVar[str] = "sqlite"
    _locks: RecoveryFileLocks


    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = "flowexec_",
        max_depth: int = DEFAULT_MAX_DEPTH,
        **options: Any,
    ) -> None:
        """`options`: the fields of `SqliteOptions` (store/sqlite/options.py), by name."""
        super().__init__(table_prefix=table_prefix, max_depth=max_depth)
        target = parse_sqlite_url(url)
        self._options = SqliteOptions.from_keywords(options)
        self._db = SqliteConnection(target, table_prefix=self.table_prefix, options=self._options)
        self._locks = RecoveryFileLocks(target, self.table_prefix)
        self._worker_registry = SqliteWorkerRegistry(self)

    @classmethod
    async def open(
        cls, url: str, *, migrate: bool = True, **options: Any
    ) -> Self:
        store = cls(url, **options)
        try:
            await store._db.open()
            if migrate and not store.read_only:
                await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def read_only(self) -> bool:
        """The file may only be read by this process: inspecting works, writes are refused,
        and opening it applies no migrations."""
        return self._db.read_only

    @property
    def path(self) -> Path | None:
        """The database file, or None for `:memory:`."""
        return self._db.target.path

    @property
    def recovery_locks(self) -> RecoveryFileLocks:
        """The recovery locks this store holds, and the files behind them."""
        return self._locks

    async def close(self) -> None:
        if self._db.closed:
            return
        self._db.closed = True
        await self._locks.close()
        await self._db.close()

    def _rows(self, conn: sqlite3.Connection, template: str, params: Any = ()) -> list[Row]:
        # fetchall() also finishes RETURNING statements, so COMMIT never meets one in progress.
        rows: list[Row] = conn.execute(self._sql(template), params).fetchall()
        return rows

    async def _read_rows(self, template: str, params: dict[str, Any] | None = None) -> list[Row]:
        """One statement's rows, read in its own transaction at the database clock `now`."""
        return await self._db.read(
            lambda conn, now: self._rows(conn, template, {**(params or {}), "now": now})
        )

    async def _write_rows(self, template: str, params: dict[str, Any]) -> list[Row]:
        return await self._db.write(
            lambda conn, now: self._rows(conn, template, {**params, "now": now})
        )

    async def _write_count(self, template: str, params: dict[str, Any] | None = None) -> int:
        return await self._db.write(
            lambda conn, now: conn.execute(
                self._sql(template), {**(params or {}), "now": now}
            ).rowcount
        )

    # ------------------------------------------------------------ migrations

    async def migrate(self, *, target_version: int | None = None) -> list[str]:
        available = migrations.load_migrations("flowexec.store.sqlite", self.table_prefix)

        def body(conn: sqlite3.Connection, now: int) -> list[str]:
            # BEGIN IMMEDIATE is the migration lock: a second migrator waits, then sees ours.
            conn.execute(self._sql(Q.MIGRATIONS_TABLE))
            applied = {int(r["version"]) for r in self._rows(conn, Q.APPLIED_MIGRATIONS)}
            names: list[str] = []
            for migration in migrations.pending(available, applied, target_version):
                for statement in split_statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    self._sql(Q.RECORD_MIGRATION),
                    {"version": migration.version, "name": migration.name, "now": now},
                )
                names.append(migration.name)
            return names

        applied_now = await self._db.write(body)
        if applied_now:
            log.info(
                "applied migrations %s to %s", ", ".join(applied_now), self._db.target.display
            )
        return applied_now

    async def now(self) -> datetime:
        return await self._db.read(lambda conn, now: from_micros(now))
