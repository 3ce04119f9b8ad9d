"""PostgreSQL backend: psycopg 3, async, one connection pool, plus two dedicated connections.

The pool serves every statement. One connection LISTENs for new work; another holds the
recovery lock for as long as it is held, because a session-level advisory lock belongs to the
connection that took it and a pool hands out a different one each time (SPEC §9).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from flowexec.errors import ConfigError, StoreUnavailable
from flowexec.model import DEFAULT_MAX_DEPTH, StoreStats
from flowexec.store import migrations
from flowexec.store.base import (
    CompletionWrite,
    RecoveryPolicy,
    RetryWrite,
    Row,
    SqlExecutionStore,
    StatusEffect,
    StatusWrite,
)
from flowexec.store.postgres import queries as Q
from flowexec.store.urls import redact

log = logging.getLogger("flowexec.store.postgres")

_MIGRATION_LOCK_ID = -1  # recovery lock ids are 0..2**31-1, so this key never collides
_STATUS_STATEMENTS = {
    StatusEffect.RUN: Q.STATUS_RUN,
    StatusEffect.PAUSE: Q.STATUS_PAUSE,
    StatusEffect.FINISH: Q.STATUS_FINISH,
    StatusEffect.REQUEUE: Q.STATUS_REQUEUE,
}


def _namespace(table_prefix: str) -> int:
    """A signed 32-bit advisory-lock namespace per installation (table prefix)."""
    value = zlib.crc32(f"flowexec:{table_prefix}".encode())
    return value - (1 << 32) if value >= 1 << 31 else value


_OPERATIONAL = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def _with_utc(url: str) -> str:
    """The URL's own `options`, plus a UTC session time zone (so timestamps come back in UTC)."""
    try:
        options = conninfo_to_dict(url).get("options") or ""
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"bad PostgreSQL URL {redact(url)!r}: {_first_line(exc)}") from exc
    return f"{options} -c TimeZone=UTC".strip()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class PostgresExecutionStore(SqlExecutionStore):
    backend: ClassVar[str] = "postgres"

    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = "flowexec_",
        max_depth: int = DEFAULT_MAX_DEPTH,
        pool_min_size: int = 1,
        pool_max_size: int = 10,
    ) -> None:
        super().__init__(table_prefix=table_prefix, max_depth=max_depth)
        self._url = url
        self._namespace = _namespace(self.table_prefix)
        self._channel = f"{self.table_prefix}work"
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "row_factory": dict_row,
            "options": _with_utc(url),
        }
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, Any]]] = (
            AsyncConnectionPool(
                url,
                min_size=pool_min_size,
                max_size=pool_max_size,
                kwargs=self._connect_kwargs,
                connection_class=psycopg.AsyncConnection[dict[str, Any]],
                open=False,
                name=f"flowexec-{self.table_prefix}",
            )
        )
        self._lock_conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._held_locks: set[int] = set()
        self._lock_mutex = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, url: str, *, migrate: bool = True, connect_timeout_s: int = 10, **options: Any
    ) -> PostgresExecutionStore:
        store = cls(url, **options)
        # One direct connection first: a wrong host, port or password fails at once with the
        # server's own reason, where the pool would retry quietly until its timeout.
        try:
            probe = await psycopg.AsyncConnection.connect(
                url, connect_timeout=connect_timeout_s, **store._connect_kwargs
            )
        except _OPERATIONAL as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {redact(url)}: {_first_line(exc)}"
            ) from exc
        except psycopg.ProgrammingError as exc:  # a conninfo psycopg cannot parse
            raise ConfigError(f"bad PostgreSQL URL {redact(url)!r}: {_first_line(exc)}") from exc
        await probe.close()
        try:
            await store._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as exc:
            await store._pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact(url)}") from exc
        try:
            if migrate:
                await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    def _sql(self, template: str) -> str:
        # The prefix is validated as [a-z_][a-z0-9_]*; values always travel as parameters.
        return template.replace("{p}", self.table_prefix)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        async with self._lock_mutex:
            await self._drop_lock_connection()
        await self._pool.close()

    # ------------------------------------------------------------ plumbing

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
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
                f"mode during a failover): {_first_line(exc)}"
            ) from exc
        except _OPERATIONAL as exc:
            raise StoreUnavailable(f"PostgreSQL at {redact(self._url)} failed: {exc}") from exc

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

    # ------------------------------------------------------------ migrations

    async def migrate(self, *, target_version: int | None = None) -> list[str]:
        available = migrations.load_migrations(
            "flowexec.store.postgres", self.table_prefix
        )
        applied_now: list[str] = []
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                self._sql(Q.MIGRATION_LOCK),
                {"namespace": self._namespace, "lock_id": _MIGRATION_LOCK_ID},
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

    # ------------------------------------------------------------ executions

    async def _insert_execution(
        self, params: dict[str, Any], *, start: bool, fence: tuple[str, int] | None
    ) -> bool:
        full = {
            **params,
            "start": start,
            "channel": self._channel,
            "fence_worker": None if fence is None else fence[0],
            "fence_epoch": None if fence is None else fence[1],
        }
        statement = Q.INSERT_ROOT if params["parent_execution_id"] is None else Q.INSERT_CHILD
        return bool(await self._rows(statement, full))

    async def _fetch_execution(self, id: str) -> Row | None:
        return await self._one(Q.GET, {"id": id})

    async def _delete_tree(self, id: str) -> bool:
        return bool(await self._rows(Q.DELETE_TREE, {"id": id}))

    async def _write_status(self, write: StatusWrite) -> bool:
        params = {
            "id": write.execution_id,
            "status": write.status.value,
            "sources": write.sources,
            "fence_worker": None if write.fence is None else write.fence[0],
            "fence_epoch": None if write.fence is None else write.fence[1],
            "error_message": write.error_message,
            "error_node_id": write.error_node_id,
            "started_at": write.started_at,
            "completed_at": write.completed_at,
            "result": write.result_json,
            "channel": self._channel,
        }
        return bool(await self._rows(_STATUS_STATEMENTS[write.effect], params))

    async def _make_runnable(self, id: str) -> bool:
        return bool(await self._rows(Q.MAKE_RUNNABLE, {"id": id, "channel": self._channel}))

    async def _root_page(
        self,
        flow_id: str,
        limit: int,
        cursor: tuple[datetime, str] | None,
        owner_id: str | None,
    ) -> list[tuple[Row, int, int]]:
        statement = Q.ROOT_PAGE[(cursor is not None, owner_id is not None)]
        rows = await self._rows(
            statement,
            {
                "flow_id": flow_id,
                "limit": limit,
                "after_created": None if cursor is None else cursor[0],
                "after_id": None if cursor is None else cursor[1],
                "owner_id": owner_id,
            },
        )
        return [(r, int(r["levels"]), int(r["total_nested"])) for r in rows]

    async def _children(self, parent_id: str) -> list[Row]:
        return await self._rows(Q.CHILDREN, {"id": parent_id})

    async def _subtree(self, id: str, max_nodes: int) -> list[tuple[Row, int]]:
        rows = await self._rows(Q.SUBTREE, {"id": id, "max_nodes": max_nodes})
        return [(r, int(r["level"])) for r in rows]

    async def _statuses(self, ids: list[str]) -> list[tuple[str, str]]:
        return [(r["id"], r["status"]) for r in await self._rows(Q.STATUSES, {"ids": ids})]

    # ------------------------------------------------------------ claims

    async def _claim_one(self, execution_id: str, worker_id: str, timeout_ms: int) -> Row | None:
        return await self._one(
            Q.CLAIM_ONE, {"id": execution_id, "worker_id": worker_id, "timeout_ms": timeout_ms}
        )

    async def _claim_batch(
        self, worker_id: str, timeout_ms: int, limit: int, flow_ids: list[str] | None
    ) -> list[Row]:
        statement = Q.CLAIM_BATCH if flow_ids is None else Q.CLAIM_BATCH_FOR_FLOWS
        return await self._rows(
            statement,
            {"worker_id": worker_id, "timeout_ms": timeout_ms, "limit": limit,
             "flow_ids": flow_ids},
        )

    async def _claim_and_start(
        self,
        worker_id: str,
        timeout_ms: int,
        limit: int,
        flow_ids: list[str] | None,
        completions: list[CompletionWrite],
    ) -> tuple[list[Row], set[str]]:
        statement = Q.CLAIM_AND_START if flow_ids is None else Q.CLAIM_AND_START_FOR_FLOWS
        rows = await self._rows(
            statement,
            {
                "worker_id": worker_id,
                "timeout_ms": timeout_ms,
                "limit": limit,
                "most": limit + len(completions),
                "flow_ids": flow_ids,
                "done_ids": [c.execution_id for c in completions],
                "done_epochs": [c.epoch for c in completions],
                "done_results": [c.result_json for c in completions],
            },
        )
        completed = set(rows[0]["completed"]) if rows else set()
        return [r for r in rows if r["id"] is not None], completed

    async def _release(self, execution_id: str, worker_id: str, epoch: int | None) -> bool:
        return bool(
            await self._rows(
                Q.RELEASE,
                {"id": execution_id, "worker_id": worker_id, "epoch": epoch},
            )
        )

    async def _extend(
        self, worker_id: str, claims: list[tuple[str, int | None]], timeout_ms: int
    ) -> set[str]:
        rows = await self._rows(
            Q.EXTEND,
            {
                "worker_id": worker_id,
                "timeout_ms": timeout_ms,
                "ids": [c[0] for c in claims],
                "epochs": [c[1] for c in claims],
            },
        )
        return {r["execution_id"] for r in rows}

    async def _active_claims(self, worker_id: str | None) -> list[Row]:
        if worker_id is None:
            return await self._rows(Q.ACTIVE_CLAIMS)
        return await self._rows(Q.ACTIVE_CLAIMS_OF_WORKER, {"worker_id": worker_id})

    async def _claim_row(self, execution_id: str) -> Row | None:
        return await self._one(Q.CLAIM_ROW, {"id": execution_id})

    async def _expire_claims(self) -> int:
        return await self._count(Q.EXPIRE_CLAIMS)

    # ------------------------------------------------------------ failures and recovery

    async def _set_failure_info(self, execution_id: str, failure_count: int, reason: str) -> bool:
        return (
            await self._count(
                Q.SET_FAILURE_INFO,
                {"id": execution_id, "failure_count": failure_count, "reason": reason},
            )
            > 0
        )

    async def _retry(self, write: RetryWrite) -> Row | None:
        return await self._one(
            Q.RETRY,
            {
                "id": write.execution_id,
                "worker_id": write.worker_id,
                "epoch": write.epoch,
                "reason": write.reason,
                "delay_ms": write.delay_ms,
                "increment": 1 if write.count_failure else 0,
                "max_failures": write.max_failures,
                "error_node_id": write.error_node_id,
                "channel": self._channel,
            },
        )

    async def _needing_recovery(self, limit: int) -> list[Row]:
        return await self._rows(Q.NEEDING_RECOVERY, {"limit": limit})

    async def _recover(self, worker_id: str, policy: RecoveryPolicy) -> list[Row]:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(self._sql(Q.EXPIRE_CLAIMS))
            cur = await conn.execute(
                self._sql(Q.RECOVER),
                {
                    "worker_id": worker_id,
                    "limit": policy.limit,
                    "max_failures": policy.max_failures,
                    "backoff_base_ms": policy.backoff_base_ms,
                    "backoff_max_ms": policy.backoff_max_ms,
                    "channel": self._channel,
                },
            )
            return await cur.fetchall()

    async def _insert_recovery(
        self,
        execution_id: str,
        worker_id: str,
        reason: str,
        previous_status: str | None,
        previous_worker_id: str | None,
    ) -> Row | None:
        return await self._one(
            Q.INSERT_RECOVERY,
            {
                "id": execution_id,
                "worker_id": worker_id,
                "reason": reason,
                "previous_status": previous_status,
                "previous_worker_id": previous_worker_id,
            },
        )

    async def _recovery_rows(self, execution_id: str) -> list[Row]:
        return await self._rows(Q.RECOVERY_HISTORY, {"id": execution_id})

    # ------------------------------------------------------------ the recovery lock

    async def _lock_connection(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._lock_conn is None or self._lock_conn.closed:
            try:
                self._lock_conn = await psycopg.AsyncConnection.connect(
                    self._url, **self._connect_kwargs
                )
            except _OPERATIONAL as exc:
                raise StoreUnavailable(
                    f"PostgreSQL at {redact(self._url)} failed: {exc}"
                ) from exc
        return self._lock_conn

    async def _drop_lock_connection(self) -> None:
        self._held_locks.clear()
        if self._lock_conn is not None:
            with suppress(psycopg.Error):
                await self._lock_conn.close()
            self._lock_conn = None

    async def _lock_statement(self, template: str, lock_id: int) -> bool:
        conn = await self._lock_connection()
        try:
            cur = await conn.execute(
                self._sql(template), {"namespace": self._namespace, "lock_id": lock_id}
            )
            row = await cur.fetchone()
        except _OPERATIONAL as exc:
            await self._drop_lock_connection()  # the server dropped the session and its locks
            raise StoreUnavailable(f"PostgreSQL at {redact(self._url)} failed: {exc}") from exc
        return bool(row and row["ok"])

    async def _try_lock(self, lock_id: int) -> bool:
        async with self._lock_mutex:
            if lock_id in self._held_locks:
                # Still ours only while the session that took it lives.
                conn = await self._lock_connection()
                try:
                    await conn.execute("SELECT 1")
                    return True
                except _OPERATIONAL:
                    await self._drop_lock_connection()
            ok = await self._lock_statement(Q.TRY_LOCK, lock_id)
            if ok:
                self._held_locks.add(lock_id)
            return ok

    async def _unlock(self, lock_id: int) -> bool:
        async with self._lock_mutex:
            if lock_id not in self._held_locks:
                return False
            self._held_locks.discard(lock_id)
            try:
                ok = await self._lock_statement(Q.UNLOCK, lock_id)
            except StoreUnavailable:
                return True  # the session is gone, and the lock with it
            if not self._held_locks:
                await self._drop_lock_connection()
            return ok

    # ------------------------------------------------------------ waking workers

    async def wait_for_work(self, timeout_s: float) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="flowexec-listen")
        await self._wait_local(timeout_s)

    async def _listen(self) -> None:
        """Turn NOTIFYs into wake-ups; reconnect forever, polling covers the gaps."""
        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._signal_work()  # anything sent while we were away
                    delay = 0.1
                    async for _ in conn.notifies():
                        self._signal_work()
            except psycopg.Error as exc:
                log.warning("listener for %s lost its connection: %s", self._channel, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # ------------------------------------------------------------ operations

    async def _purge(self, before: datetime, limit: int) -> int:
        return await self._count(Q.PURGE, {"before": before, "limit": limit})

    async def _stats(self) -> StoreStats:
        counts = await self._rows(Q.STATS_BY_STATUS)
        extra = await self._one(Q.STATS_EXTRA)
        assert extra is not None
        return StoreStats(
            counts_by_status={r["status"]: int(r["n"]) for r in counts},
            active_claims=int(extra["active_claims"]),
            oldest_queued_at=extra["oldest_queued_at"],
            recoveries_last_hour=int(extra["recoveries_last_hour"]),
        )

    async def now(self) -> datetime:
        row = await self._one(Q.NOW)
        assert row is not None
        value: datetime = row["now"]
        return value
