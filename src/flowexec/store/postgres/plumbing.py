"""The PostgreSQL store's plumbing: the pool, opening (with the pooler check and the LISTEN
self-test), closing, running statements with errors mapped, migrating, and waiting.

Connections come from one pool. Writes a leader makes as leader run in one transaction that
`_transaction` opens: the statements inside it (through `_connection`) use its connection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Self

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from flowexec.errors import StoreUnavailable
from flowexec.model import DEFAULT_MAX_DEPTH, check_positive
from flowexec.store import migrations
from flowexec.store.event_wakeups import EventWakeups, Subscriptions
from flowexec.store.postgres import queries as Q
from flowexec.store.postgres.connecting import (
    OPERATIONAL_ERRORS,
    Connection,
    ConnectionPool,
    bad_url,
    connect_kwargs,
    error_summary,
    failed,
    refused,
)
from flowexec.store.postgres.listener import WorkListener
from flowexec.store.postgres.locks import MIGRATION_LOCK_ID, LeaderLeases, lock_namespace
from flowexec.store.postgres.options import PostgresOptions
from flowexec.store.postgres.pooling import transaction_pooled
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import Row
from flowexec.store.urls import redact

log = logging.getLogger("flowexec.store.postgres")

SELF_TEST_TIMEOUT_S = 5.0
"""How long the LISTEN self-test may take, connecting and its own NOTIFY (normally a few ms)."""


class PostgresPlumbing(SqlPrimitives):
    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = "flowexec_",
        max_depth: int = DEFAULT_MAX_DEPTH,
        **options: Any,
    ) -> None:
        """`options`: the fields of `PostgresOptions` (store/postgres/options.py), by name."""
        super().__init__(table_prefix=table_prefix, max_depth=max_depth)
        self.options = PostgresOptions.from_keywords(options)
        self._url = url
        self.transaction_pooled = False
        """Set at open: the URL goes through a transaction pooler (store/postgres/pooling.py)."""
        self.polling = False
        """Set at open: no LISTEN works, so waiters poll every `poll_interval_s`."""
        self._namespace = lock_namespace(self.table_prefix)
        self._channel = f"{self.table_prefix}work"
        self._events_channel = f"{self.table_prefix}events"
        self._event_wakeups = EventWakeups()
        self._subscriptions = Subscriptions()
        self._connect_kwargs = connect_kwargs(url)
        self._pool: AsyncConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=self.options.pool_min_size,
            max_size=self.options.pool_max_size,
            kwargs=self._connect_kwargs,
            connection_class=psycopg.AsyncConnection[dict[str, Any]],
            open=False,
            name=f"flowexec-{self.table_prefix}",
        )
        self._in_transaction: ContextVar[Connection | None] = ContextVar(
            f"flowexec-transaction-{id(self)}", default=None
        )
        self._locks = LeaderLeases(self._rows, self._transaction, self._sql)
        listen_url = self.options.session_url or url
        self._listener = WorkListener(
            listen_url,
            self._channel,
            self._signal_work,
            events_channel=self._events_channel,
            on_events=self._event_wakeups.wake_from_payload,
            connect_kwargs=connect_kwargs(listen_url, prepare=False),
        )

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, **options: Any) -> Self:
        store = cls(url, **options)
        timeout_s = store.options.connect_timeout_s
        # One direct connection first: a wrong host, port or password fails at once with the
        # server's own reason, where the pool would retry quietly until its timeout.
        try:
            probe = await psycopg.AsyncConnection.connect(
                url, connect_timeout=timeout_s, **store._connect_kwargs, prepare_threshold=None
            )
        except OPERATIONAL_ERRORS as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {redact(url)}: {error_summary(exc)}"
            ) from exc
        except psycopg.ProgrammingError:  # a conninfo psycopg cannot parse
            raise bad_url(url) from None
        async with probe:
            store.transaction_pooled = await transaction_pooled(store.options, probe)
        if store.transaction_pooled:
            # The dict the pool connects with, before its first connection.
            store._connect_kwargs["prepare_threshold"] = None
        try:
            await store._pool.open(wait=True, timeout=timeout_s)
        except PoolTimeout as exc:
            await store._pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact(url)}") from exc
        try:
            if migrate:
                await store.migrate()
            await store._choose_wakeups()
        except BaseException:
            await store.close()
            raise
        return store

    async def _choose_wakeups(self) -> None:
        """LISTEN on the session URL, or on the URL if no transaction pooler is in the way
        and a self-test NOTIFY comes through; else poll, said once in the log."""
        level = logging.INFO  # the documented set-up: a transaction alias alone
        if self.options.session_url is None and self.transaction_pooled:
            reason = "the URL goes through a transaction pooler and no session_url was given"
        elif await self._listener.self_test(self._notify, SELF_TEST_TIMEOUT_S):
            return
        else:
            reason = "a self-test NOTIFY did not arrive on the listening connection"
            level = logging.WARNING
        self.polling = True
        log.log(
            level,
            "no LISTEN for %s (%s): waiters poll every %g s; give session_url (a direct or "
            "session-pooled URL) for wake-ups by NOTIFY",
            self.table_prefix, reason, self.options.poll_interval_s,
        )

    async def _notify(self, payload: str) -> None:
        await self._rows(Q.NOTIFY, {"channel": self._channel, "payload": payload})

    async def close(self) -> None:
        await self._listener.close()
        with contextlib.suppress(StoreUnavailable):
            await self._locks.close()
        await self._pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        current = self._in_transaction.get()
        if current is not None:
            yield current  # errors are mapped where that transaction began
            return
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.errors.UndefinedTable as exc:
            raise StoreUnavailable(
                f"flowexec tables with prefix {self.table_prefix!r} do not exist in this "
                "database: run `flowexec migrate` (or open_store(..., migrate=True))"
            ) from exc
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise StoreUnavailable(
                f"PostgreSQL at {redact(self._url)} refuses writes (a standby, or read-only "
                f"mode during a failover): {error_summary(exc)}"
            ) from exc
        except OPERATIONAL_ERRORS as exc:
            if isinstance(exc, psycopg.OperationalError):
                await self._discard_broken_connections()
            raise failed(self._url, exc) from exc
        except psycopg.Error as exc:  # its text may quote the values: none of it goes on
            raise refused(self._url, exc) from None

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """One transaction that the statements run inside it join."""
        async with self._connection() as conn, conn.transaction():
            token = self._in_transaction.set(conn)
            try:
                yield conn
            finally:
                self._in_transaction.reset(token)

    async def _discard_broken_connections(self) -> None:
        """After a server restart every idle connection is dead, and each would fail one more
        statement: test them now, so the next statement gets a live one (docs/architecture.md
        §7: workers claim again within a second or two)."""
        with contextlib.suppress(Exception):
            await self._pool.check()

    async def _rows(self, template: str, params: dict[str, Any] | None = None) -> list[Row]:
        async with self._connection() as conn:
            cur = await conn.execute(self._sql(template), params)
            return await cur.fetchall() if cur.description else []

    async def _one(self, template: str, params: dict[str, Any] | None = None) -> Row | None:
        rows = await self._rows(template, params)
        return rows[0] if rows else None

    async def _count(self, template: str, params: dict[str, Any] | None = None) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(self._sql(template), params)
            return max(cur.rowcount, 0)

    async def migrate(self, *, target_version: int | None = None) -> list[str]:
        available = migrations.load_migrations("flowexec.store.postgres", self.table_prefix)
        applied_now: list[str] = []
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                self._sql(Q.MIGRATION_LOCK),
                {"namespace": self._namespace, "lock_id": MIGRATION_LOCK_ID},
            )
            await conn.execute(self._sql(Q.MIGRATIONS_TABLE))
            cur = await conn.execute(self._sql(Q.APPLIED_MIGRATIONS))
            applied = {int(r["version"]) for r in await cur.fetchall()}
            for migration in migrations.pending(available, applied, target_version):
                await conn.execute(migration.sql)
                await conn.execute(
                    self._sql(Q.RECORD_MIGRATION),
                    {"version": migration.version, "name": migration.name},
                )
                applied_now.append(migration.name)
        if applied_now:
            log.info("applied migrations %s", ", ".join(applied_now))
        return applied_now

    async def wait_for_work(self, timeout_s: float) -> None:
        check_positive(timeout_s, "timeout_s", allow_zero=True)
        if self.polling:
            await self._wait_local(min(timeout_s, self.options.poll_interval_s))
            return
        self._listener.ensure_running()
        await self._wait_local(timeout_s)
