"""SQLite backend: stdlib `sqlite3` on one dedicated thread per store, WAL, `BEGIN IMMEDIATE`.

Each store owns one connection and one worker thread, so the event loop never waits on SQLite
and the callers of one store are serialised. Every primitive is one transaction; a write takes
the database's write lock at `BEGIN IMMEDIATE`, so the statements inside it are atomic and see
no concurrent writer. Several processes share one file: a writer that stays locked out past the
busy timeout retries its whole transaction with backoff, and a caller never sees "database is
locked". The recovery lock is an OS file lock beside the database, freed by the kernel when its
holder dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

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
from flowexec.store.sqlite import queries as Q

log = logging.getLogger("flowexec.store.sqlite")

T = TypeVar("T")
Body = Callable[[sqlite3.Connection, int], T]
"""A transaction's work: the connection and the database clock (microseconds) at its start."""

# STRICT tables (3.37), RETURNING (3.35), UPDATE ... FROM (3.33), upsert (3.24).
MIN_SQLITE_VERSION = (3, 37, 0)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TIME_COLUMNS = frozenset(
    {
        "created_at", "updated_at", "started_at", "completed_at", "last_failure_at",
        "processing_started_at", "available_at", "claimed_at", "expires_at", "heartbeat_at",
        "recovered_at", "oldest_queued_at",
    }
)
_JSON_COLUMNS = frozenset({"options", "integration", "external_events", "result"})

_STATUS_STATEMENTS = {
    StatusEffect.RUN: Q.STATUS_RUN,
    StatusEffect.PAUSE: Q.STATUS_PAUSE,
    StatusEffect.FINISH: Q.STATUS_FINISH,
    StatusEffect.REQUEUE: Q.STATUS_REQUEUE,
}
_RELEASING_EFFECTS = frozenset({StatusEffect.FINISH, StatusEffect.REQUEUE})

# Primary result codes (https://sqlite.org/rescode.html).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_UNAVAILABLE_CODES = frozenset(
    {3, _SQLITE_READONLY, 10, _SQLITE_CORRUPT, 13, 14, 15, 22, 23, _SQLITE_NOTADB}
)  # PERM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOLFS, AUTH, NOTADB

_OPTIONS = frozenset(
    {"table_prefix", "max_depth", "busy_timeout_ms", "lock_timeout_s", "synchronous",
     "poll_interval_s"}
)
_SYNCHRONOUS = ("full", "normal")
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_FIRST_RETRY_S = 0.001
_MAX_RETRY_S = 0.05


def to_micros(value: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (exact)."""
    return (value - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _decode_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    """Rows as the base class wants them: aware UTC datetimes and decoded JSON."""
    row: Row = {}
    for column, value in zip(cursor.description, values, strict=True):
        name = column[0]
        if value is not None:
            if name in _TIME_COLUMNS:
                value = from_micros(value)
            elif name in _JSON_COLUMNS:
                value = json.loads(value)
        row[name] = value
    return row


def split_statements(script: str) -> list[str]:
    """A migration script as single statements.

    `executescript` would commit the migration transaction first, so the runner executes
    statement by statement; `sqlite3.complete_statement` knows about quotes, comments and
    trigger bodies. Text after the last statement may only be comments.
    """
    statements: list[str] = []
    buffer = ""
    pieces = script.split(";")
    for piece in pieces[:-1]:
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    rest = _COMMENTS.sub("", buffer + pieces[-1]).strip()
    if rest:
        raise ConfigError(f"migration script ends in an incomplete statement: {rest[:80]!r}")
    return statements


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    """The database a `sqlite:` URL names: an absolute file path, or None for `:memory:`."""

    url: str
    path: Path | None

    @property
    def display(self) -> str:
        return ":memory:" if self.path is None else str(self.path)


def parse_sqlite_url(url: str) -> SqliteTarget:
    """`sqlite:///relative.db` (from the working directory), `sqlite:////abs.db`, `:memory:`."""
    if not isinstance(url, str):
        raise ConfigError(f"the database URL must be a string, not {type(url).__name__}")
    usage = "use sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "sqlite":
        raise ConfigError(f"{url!r} is not a SQLite URL: {usage}")
    if not rest.strip("/"):
        raise ConfigError(f"SQLite URL {url!r} names no database file: {usage}")
    if not rest.startswith("/"):
        host = rest.split("/", 1)[0]
        raise ConfigError(f"SQLite URL {url!r} names a host ({host!r}); it takes none: {usage}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ConfigError(
            f"SQLite URL {url!r} has a query string or fragment; pass options to open_store "
            "as keyword arguments instead"
        )
    if "\x00" in path:
        raise ConfigError(f"SQLite URL {url!r} contains a NUL character")
    if path == ":memory:":
        return SqliteTarget(url, None)
    return SqliteTarget(url, Path(os.path.abspath(path)))


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED)
    message = str(exc)
    return "database is locked" in message or "database table is locked" in message


class SqliteExecutionStore(SqlExecutionStore):
    backend: ClassVar[str] = "sqlite"

    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = "flowexec_",
        max_depth: int = DEFAULT_MAX_DEPTH,
        busy_timeout_ms: int = 5000,
        lock_timeout_s: float = 60.0,
        synchronous: str = "full",
        poll_interval_s: float = 0.1,
    ) -> None:
        """`busy_timeout_ms`: SQLite's own wait for a lock; `lock_timeout_s`: how long a
        transaction keeps retrying after that before `StoreUnavailable`; `synchronous`:
        `full` (fsync every commit, the durable default) or `normal` (WAL, fsync at
        checkpoints); `poll_interval_s`: how often `wait_for_work` looks for other
        connections' commits.
        """
        super().__init__(table_prefix=table_prefix, max_depth=max_depth)
        self._target = parse_sqlite_url(url)
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int) or not (
            0 <= busy_timeout_ms <= 600_000
        ):
            raise ConfigError(
                f"busy_timeout_ms must be an integer 0..600000, got {busy_timeout_ms!r}"
            )
        if isinstance(lock_timeout_s, bool) or not isinstance(lock_timeout_s, int | float) or not (
            0 < lock_timeout_s <= 3600
        ):
            raise ConfigError(
                f"lock_timeout_s must be a number in (0, 3600], got {lock_timeout_s!r}"
            )
        if isinstance(poll_interval_s, bool) or not isinstance(
            poll_interval_s, int | float
        ) or not (0 < poll_interval_s <= 60):
            raise ConfigError(
                f"poll_interval_s must be a number in (0, 60], got {poll_interval_s!r}"
            )
        if synchronous not in _SYNCHRONOUS:
            raise ConfigError(f"synchronous must be one of {_SYNCHRONOUS}, got {synchronous!r}")
        self._busy_timeout_ms = busy_timeout_ms
        self._lock_timeout_s = float(lock_timeout_s)
        self._synchronous = synchronous
        self._poll_interval_s = float(poll_interval_s)
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"flowexec-sqlite-{self.table_prefix}"
        )
        self._conn: sqlite3.Connection | None = None  # touched only on the executor's thread
        self._statements: dict[str, str] = {}
        self._last_now = 0  # the latest clock reading handed out, in microseconds
        self._data_version = 0  # the last PRAGMA data_version seen; others' commits change it
        self._closed = False
        # lock id -> file descriptor holding the flock (None for an in-memory database)
        self._held_locks: dict[int, int | None] = {}
        self._lock_mutex = asyncio.Lock()

    @classmethod
    async def open(
        cls, url: str, *, migrate: bool = True, **options: Any
    ) -> SqliteExecutionStore:
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigError(
                f"the SQLite store does not take {', '.join(unknown)}; "
                f"its options are {', '.join(sorted(_OPTIONS))}"
            )
        store = cls(url, **options)
        try:
            await store._call(store._connect)
            if migrate:
                await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def path(self) -> Path | None:
        """The database file, or None for `:memory:`."""
        return self._target.path

    def _sql(self, template: str) -> str:
        # The prefix is validated as [a-z_][a-z0-9_]*; values always travel as parameters.
        statement = self._statements.get(template)
        if statement is None:
            statement = self._statements[template] = template.replace("{p}", self.table_prefix)
        return statement

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock_mutex:
            for lock_id in list(self._held_locks):
                self._drop_lock(lock_id)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._disconnect)
        finally:
            self._executor.shutdown(wait=False)

    # ------------------------------------------------------------ the worker thread

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StoreUnavailable(f"the SQLite store on {self._target.display} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except RuntimeError as exc:
            if self._closed:  # closed while the call was being submitted
                raise StoreUnavailable(
                    f"the SQLite store on {self._target.display} is closed"
                ) from exc
            raise

    async def _write(self, body: Body[T]) -> T:
        return await self._call(lambda: self._transaction(body, "BEGIN IMMEDIATE"))

    async def _read(self, body: Body[T]) -> T:
        return await self._call(lambda: self._transaction(body, "BEGIN"))

    def _connect(self) -> None:
        """Open the connection on the worker thread; typed errors for unusable files."""
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise ConfigError(
                f"flowexec needs SQLite {'.'.join(map(str, MIN_SQLITE_VERSION))} or newer; "
                f"this Python has {sqlite3.sqlite_version}"
            )
        if self._target.path is not None:
            self._check_path(self._target.path)
        self._retrying(self._open_connection)

    def _check_path(self, path: Path) -> None:
        parent = path.parent
        if not parent.exists():
            raise ConfigError(
                f"cannot open SQLite database {path}: directory {parent} does not exist"
            )
        if not parent.is_dir():
            raise ConfigError(f"cannot open SQLite database {path}: {parent} is not a directory")
        if path.is_dir():
            raise ConfigError(f"cannot open SQLite database {path}: it is a directory")
        if path.exists():
            if not os.access(path, os.R_OK | os.W_OK):
                raise StoreUnavailable(
                    f"cannot open SQLite database {path}: the file is not readable and "
                    "writable by this process"
                )
        elif not os.access(parent, os.W_OK | os.X_OK):
            raise StoreUnavailable(
                f"cannot create SQLite database {path}: directory {parent} is not writable"
            )

    def _open_connection(self) -> None:
        database = ":memory:" if self._target.path is None else str(self._target.path)
        conn = sqlite3.connect(
            database,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,  # only the worker thread uses it; close may come late
            cached_statements=256,
        )
        try:
            conn.row_factory = _decode_row
            conn.execute("PRAGMA foreign_keys = ON")
            if self._target.path is not None:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()["journal_mode"]
                if str(mode).lower() != "wal":
                    raise StoreUnavailable(
                        f"SQLite database {self._target.path} cannot use WAL mode "
                        f"(journal_mode is {mode!r}); is it on a network file system?"
                    )
            conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            self._data_version = int(conn.execute(Q.DATA_VERSION).fetchone()["data_version"])
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _disconnect(self) -> None:
        # No `PRAGMA optimize`: without sqlite_stat1 the planner picks the partial indexes
        # from the schema alone, and a table that was all-finished at ANALYZE time cannot
        # later talk it into scanning.
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` again, with jittered backoff, while the database stays locked."""
        deadline: float | None = None
        delay = _FIRST_RETRY_S
        while True:
            try:
                return attempt()
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    translated = self._translate(exc)
                    if translated is None:
                        raise
                    raise translated from exc
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._lock_timeout_s
                elif now >= deadline:
                    raise StoreUnavailable(
                        f"SQLite database {self._target.display} stayed locked for "
                        f"{self._lock_timeout_s:g} s: another connection holds a write "
                        "transaction"
                    ) from exc
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter spreads retrying processes
            delay = min(delay * 2, _MAX_RETRY_S)

    def _transaction(self, body: Body[T], begin: str) -> T:
        def attempt() -> T:
            conn = self._conn
            if conn is None:
                raise StoreUnavailable(f"the SQLite store on {self._target.display} is closed")
            conn.execute(begin)
            try:
                result = body(conn, self._clock(conn))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            return result

        return self._retrying(attempt)

    def _clock(self, conn: sqlite3.Connection) -> int:
        """SQLite's clock, made strictly increasing on this connection.

        SQLite ticks in milliseconds; the microseconds count this connection's transactions
        within one tick, so that executions queued one after the other keep their order.
        """
        clock: int = conn.execute(Q.NOW_MICROS).fetchone()["now_us"]
        self._last_now = max(clock, self._last_now + 1)
        return self._last_now

    def _translate(self, exc: sqlite3.Error) -> Exception | None:
        """A typed error for what the caller cannot fix by retrying; None: not ours to type."""
        where = self._target.display
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
            return StoreUnavailable(
                f"{where} is not a usable SQLite database (not a database, corrupted or "
                f"encrypted): {exc}"
            )
        if primary == _SQLITE_READONLY:
            return StoreUnavailable(
                f"SQLite database {where} is read-only for this process: {exc}"
            )
        if primary in _UNAVAILABLE_CODES:
            return StoreUnavailable(f"SQLite database {where} failed: {exc}")
        if isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc):
            return StoreUnavailable(
                f"flowexec tables with prefix {self.table_prefix!r} do not exist in {where}: "
                "run `flowexec migrate` or open the store with migrate=True"
            )
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
            return StoreUnavailable(f"the SQLite store on {where} is closed")
        return None

    def _rows(self, conn: sqlite3.Connection, template: str, params: Any = ()) -> list[Row]:
        # fetchall() also finishes RETURNING statements, so COMMIT never meets one in progress.
        rows: list[Row] = conn.execute(self._sql(template), params).fetchall()
        return rows

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

        applied_now = await self._write(body)
        if applied_now:
            log.info("applied migrations %s to %s", ", ".join(applied_now), self._target.display)
        return applied_now

    # ------------------------------------------------------------ executions

    async def _insert_execution(
        self, params: dict[str, Any], *, start: bool, fence: tuple[str, int] | None
    ) -> bool:
        values = {
            **params,
            "created_at": to_micros(params["created_at"]),
            "updated_at": to_micros(params["updated_at"]),
            "fence_worker": None if fence is None else fence[0],
            "fence_epoch": None if fence is None else fence[1],
        }
        statement = Q.INSERT_ROOT if params["parent_execution_id"] is None else Q.INSERT_CHILD

        def body(conn: sqlite3.Connection, now: int) -> bool:
            values["available_at"] = now if start else None
            return bool(self._rows(conn, statement, values))

        return await self._write(body)

    async def _fetch_execution(self, id: str) -> Row | None:
        rows = await self._read(lambda conn, now: self._rows(conn, Q.GET, {"id": id}))
        return rows[0] if rows else None

    async def _delete_tree(self, id: str) -> bool:
        def body(conn: sqlite3.Connection, now: int) -> bool:
            ids = self._rows(conn, Q.SUBTREE_IDS_DEEPEST_FIRST, {"id": id})
            conn.executemany(self._sql(Q.DELETE_ONE), [(r["id"],) for r in ids])
            return bool(ids)

        return await self._write(body)

    async def _write_status(self, write: StatusWrite) -> bool:
        return await self._write(lambda conn, now: self._apply_status(conn, now, write))

    def _apply_status(self, conn: sqlite3.Connection, now: int, write: StatusWrite) -> bool:
        """One status write inside the caller's transaction; True if it was made."""
        params = {
            "id": write.execution_id,
            "status": write.status.value,
            "sources": json.dumps(write.sources),
            "fence_worker": None if write.fence is None else write.fence[0],
            "fence_epoch": None if write.fence is None else write.fence[1],
            "error_message": write.error_message,
            "error_node_id": write.error_node_id,
            "started_at": None if write.started_at is None else to_micros(write.started_at),
            "completed_at": (
                None if write.completed_at is None else to_micros(write.completed_at)
            ),
            "result": write.result_json,
            "now": now,
        }
        if not self._rows(conn, _STATUS_STATEMENTS[write.effect], params):
            return False
        if write.effect in _RELEASING_EFFECTS:
            conn.execute(self._sql(Q.RELEASE_CLAIM), {"id": write.execution_id})
        return True

    async def _make_runnable(self, id: str) -> bool:
        return await self._write(
            lambda conn, now: bool(self._rows(conn, Q.MAKE_RUNNABLE, {"id": id, "now": now}))
        )

    async def _root_page(
        self,
        flow_id: str,
        limit: int,
        cursor: tuple[datetime, str] | None,
        owner_id: str | None,
    ) -> list[tuple[Row, int, int]]:
        statement = Q.ROOT_PAGE[(cursor is not None, owner_id is not None)]
        params = {
            "flow_id": flow_id,
            "limit": limit,
            "after_created": None if cursor is None else to_micros(cursor[0]),
            "after_id": None if cursor is None else cursor[1],
            "owner_id": owner_id,
        }
        rows = await self._read(lambda conn, now: self._rows(conn, statement, params))
        return [(r, int(r["levels"]), int(r["total_nested"])) for r in rows]

    async def _children(self, parent_id: str) -> list[Row]:
        return await self._read(lambda conn, now: self._rows(conn, Q.CHILDREN, {"id": parent_id}))

    async def _subtree(self, id: str, max_nodes: int) -> list[tuple[Row, int]]:
        rows = await self._read(
            lambda conn, now: self._rows(conn, Q.SUBTREE, {"id": id, "max_nodes": max_nodes})
        )
        return [(r, int(r["level"])) for r in rows]

    async def _statuses(self, ids: list[str]) -> list[tuple[str, str]]:
        rows = await self._read(
            lambda conn, now: self._rows(conn, Q.STATUSES, {"ids": json.dumps(ids)})
        )
        return [(r["id"], r["status"]) for r in rows]

    # ------------------------------------------------------------ claims

    def _mark_claimed(
        self, conn: sqlite3.Connection, worker_id: str, now: int, claims: list[Row]
    ) -> None:
        conn.executemany(
            self._sql(Q.MARK_CLAIMED),
            [
                {"id": c["execution_id"], "worker_id": worker_id, "now": now, "epoch": c["epoch"]}
                for c in claims
            ],
        )

    async def _claim_one(self, execution_id: str, worker_id: str, timeout_ms: int) -> Row | None:
        def body(conn: sqlite3.Connection, now: int) -> Row | None:
            claims = self._rows(
                conn,
                Q.CLAIM_ONE,
                {"id": execution_id, "worker_id": worker_id, "now": now,
                 "timeout_us": timeout_ms * 1000},
            )
            self._mark_claimed(conn, worker_id, now, claims)
            return claims[0] if claims else None

        return await self._write(body)

    def _claim_runnable(
        self,
        conn: sqlite3.Connection,
        now: int,
        worker_id: str,
        timeout_ms: int,
        limit: int,
        flow_ids: list[str] | None,
    ) -> list[Row]:
        """Claim up to `limit` runnable executions, oldest `available_at` first: their new
        claim rows, in that order. The executions are left for the caller to mark."""
        if limit <= 0:
            return []
        pick = Q.PICK_RUNNABLE if flow_ids is None else Q.PICK_RUNNABLE_FOR_FLOWS
        pick_params = {
            "limit": limit,
            "flow_ids": None if flow_ids is None else json.dumps(flow_ids),
            "now": now,
        }
        ids = [r["id"] for r in self._rows(conn, pick, pick_params)]
        if not ids:
            return []
        claims = self._rows(
            conn,
            Q.CLAIM_PICKED,
            {"ids": json.dumps(ids), "worker_id": worker_id, "now": now,
             "timeout_us": timeout_ms * 1000},
        )
        order = {execution_id: n for n, execution_id in enumerate(ids)}
        claims.sort(key=lambda c: order[c["execution_id"]])
        return claims

    async def _claim_batch(
        self, worker_id: str, timeout_ms: int, limit: int, flow_ids: list[str] | None
    ) -> list[Row]:
        def body(conn: sqlite3.Connection, now: int) -> list[Row]:
            claims = self._claim_runnable(conn, now, worker_id, timeout_ms, limit, flow_ids)
            self._mark_claimed(conn, worker_id, now, claims)
            return claims

        return await self._write(body)

    async def _claim_and_start(
        self,
        worker_id: str,
        timeout_ms: int,
        limit: int,
        flow_ids: list[str] | None,
        completions: list[CompletionWrite],
    ) -> tuple[list[Row], set[str]]:
        writes = [c.as_status_write(worker_id) for c in completions]

        def body(conn: sqlite3.Connection, now: int) -> tuple[list[Row], set[str]]:
            # Refused completions are skipped and change nothing.
            completed = {w.execution_id for w in writes if self._apply_status(conn, now, w)}
            claims = self._claim_runnable(
                conn, now, worker_id, timeout_ms, limit + len(completed), flow_ids
            )
            if not claims:
                return [], completed
            ids = json.dumps([c["execution_id"] for c in claims])
            return self._rows(conn, Q.START_CLAIMED, {"ids": ids, "now": now}), completed

        return await self._write(body)

    async def _release(self, execution_id: str, worker_id: str, epoch: int | None) -> bool:
        def body(conn: sqlite3.Connection, now: int) -> bool:
            params = {"id": execution_id, "worker_id": worker_id, "epoch": epoch, "now": now}
            if not self._rows(conn, Q.RELEASE, params):
                return False
            conn.execute(self._sql(Q.RELEASE_CLAIM), {"id": execution_id})
            return True

        return await self._write(body)

    async def _extend(
        self, worker_id: str, claims: list[tuple[str, int | None]], timeout_ms: int
    ) -> set[str]:
        params = {
            "worker_id": worker_id,
            "timeout_us": timeout_ms * 1000,
            "pairs": json.dumps([list(c) for c in claims]),
        }
        rows = await self._write(
            lambda conn, now: self._rows(conn, Q.EXTEND, {**params, "now": now})
        )
        return {r["execution_id"] for r in rows}

    async def _active_claims(self, worker_id: str | None) -> list[Row]:
        if worker_id is None:
            return await self._read(
                lambda conn, now: self._rows(conn, Q.ACTIVE_CLAIMS, {"now": now})
            )
        return await self._read(
            lambda conn, now: self._rows(
                conn, Q.ACTIVE_CLAIMS_OF_WORKER, {"now": now, "worker_id": worker_id}
            )
        )

    async def _claim_row(self, execution_id: str) -> Row | None:
        rows = await self._read(
            lambda conn, now: self._rows(conn, Q.CLAIM_ROW, {"id": execution_id})
        )
        return rows[0] if rows else None

    async def _expire_claims(self) -> int:
        return await self._write(
            lambda conn, now: conn.execute(self._sql(Q.EXPIRE_CLAIMS), {"now": now}).rowcount
        )

    # ------------------------------------------------------------ failures and recovery

    async def _set_failure_info(self, execution_id: str, failure_count: int, reason: str) -> bool:
        params = {"id": execution_id, "failure_count": failure_count, "reason": reason}
        count = await self._write(
            lambda conn, now: conn.execute(
                self._sql(Q.SET_FAILURE_INFO), {**params, "now": now}
            ).rowcount
        )
        return count > 0

    async def _retry(self, write: RetryWrite) -> Row | None:
        params = {
            "id": write.execution_id,
            "worker_id": write.worker_id,
            "epoch": write.epoch,
            "reason": write.reason,
            "delay_us": write.delay_ms * 1000,
            "increment": 1 if write.count_failure else 0,
            "max_failures": write.max_failures,
            "error_node_id": write.error_node_id,
        }

        def body(conn: sqlite3.Connection, now: int) -> Row | None:
            rows = self._rows(conn, Q.RETRY, {**params, "now": now})
            if not rows:
                return None
            conn.execute(self._sql(Q.RELEASE_CLAIM), {"id": write.execution_id})
            return rows[0]

        return await self._write(body)

    async def _needing_recovery(self, limit: int) -> list[Row]:
        return await self._read(
            lambda conn, now: self._rows(conn, Q.NEEDING_RECOVERY, {"now": now, "limit": limit})
        )

    async def _recover(self, worker_id: str, policy: RecoveryPolicy) -> list[Row]:
        def body(conn: sqlite3.Connection, now: int) -> list[Row]:
            conn.execute(self._sql(Q.EXPIRE_CLAIMS), {"now": now})
            victims = self._rows(conn, Q.RECOVERY_VICTIMS, {"now": now, "limit": policy.limit})
            records: list[Row] = []
            for victim in victims:
                outcome = policy.outcome(int(victim["failure_count"]), victim["reason"])
                conn.execute(
                    self._sql(Q.RECOVER_ONE),
                    {
                        "id": victim["id"],
                        "now": now,
                        "status": outcome.status.value,
                        "last_failure_reason": outcome.last_failure_reason,
                        "error_message": outcome.error_message,
                        "backoff_us": outcome.backoff_ms * 1000,
                    },
                )
                records += self._rows(
                    conn,
                    Q.RECORD_RECOVERY,
                    {
                        "id": victim["id"],
                        "now": now,
                        "worker_id": worker_id,
                        "reason": outcome.record_reason,
                        "previous_status": victim["previous_status"],
                        "previous_worker_id": victim["previous_worker_id"],
                    },
                )
            return records

        return await self._write(body)

    async def _insert_recovery(
        self,
        execution_id: str,
        worker_id: str,
        reason: str,
        previous_status: str | None,
        previous_worker_id: str | None,
    ) -> Row | None:
        params = {
            "id": execution_id,
            "worker_id": worker_id,
            "reason": reason,
            "previous_status": previous_status,
            "previous_worker_id": previous_worker_id,
        }
        rows = await self._write(
            lambda conn, now: self._rows(conn, Q.INSERT_RECOVERY, {**params, "now": now})
        )
        return rows[0] if rows else None

    async def _recovery_rows(self, execution_id: str) -> list[Row]:
        return await self._read(
            lambda conn, now: self._rows(conn, Q.RECOVERY_HISTORY, {"id": execution_id})
        )

    # ------------------------------------------------------------ the recovery lock

    def lock_path(self, lock_id: int) -> Path | None:
        """The file whose flock is recovery lock `lock_id` (None for `:memory:`)."""
        path = self._target.path
        if path is None:
            return None
        return path.with_name(f"{path.name}.{self.table_prefix}recovery-{lock_id}.lock")

    async def _try_lock(self, lock_id: int) -> bool:
        # flock(LOCK_NB) never waits, so it runs right here; doing it on a thread could leak
        # a taken lock if the caller were cancelled meanwhile.
        async with self._lock_mutex:
            if self._closed:
                raise StoreUnavailable(f"the SQLite store on {self._target.display} is closed")
            if lock_id in self._held_locks:
                return True
            path = self.lock_path(lock_id)
            if path is None:
                # An in-memory database belongs to this store alone: its registry is enough.
                self._held_locks[lock_id] = None
                return True
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise StoreUnavailable(f"cannot open recovery lock file {path}: {exc}") from exc
            try:
                # The lock belongs to this open file description: another store in this
                # process opens its own and is excluded too; the kernel frees it on death.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except OSError as exc:
                os.close(fd)
                raise StoreUnavailable(f"cannot lock recovery lock file {path}: {exc}") from exc
            self._held_locks[lock_id] = fd
            return True

    async def _unlock(self, lock_id: int) -> bool:
        async with self._lock_mutex:
            if lock_id not in self._held_locks:
                return False
            self._drop_lock(lock_id)
            return True

    def _drop_lock(self, lock_id: int) -> None:
        fd = self._held_locks.pop(lock_id)
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ------------------------------------------------------------ waking workers

    async def wait_for_work(self, timeout_s: float) -> None:
        """Wake on this store's own new work at once, on any other connection's commit within
        `poll_interval_s`, and otherwise after `timeout_s`.

        SQLite has no NOTIFY. `PRAGMA data_version` tells, without reading a table, whether
        another connection (another store or process) committed since the store last looked;
        such a commit may have queued work, so the worker looks. A worker that keeps waking
        up for other commits does so at most once per poll interval.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(float(timeout_s), 0.0)
        seen = self._data_version
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if await self._wait_local(min(self._poll_interval_s, remaining)):
                return
            version = await self._call(lambda: self._retrying(self._read_data_version))
            self._data_version = version
            if version != seen:
                return

    def _read_data_version(self) -> int:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable(f"the SQLite store on {self._target.display} is closed")
        return int(conn.execute(Q.DATA_VERSION).fetchone()["data_version"])

    # ------------------------------------------------------------ operations

    async def _purge(self, before: datetime, limit: int) -> int:
        params = {"before": to_micros(before), "limit": limit}

        def body(conn: sqlite3.Connection, now: int) -> int:
            roots = [r["id"] for r in self._rows(conn, Q.PURGE_ROOTS, params)]
            if roots:
                ids = self._rows(conn, Q.TREES_DEEPEST_FIRST, {"roots": json.dumps(roots)})
                conn.executemany(self._sql(Q.DELETE_ONE), [(r["id"],) for r in ids])
            return len(roots)

        return await self._write(body)

    async def _stats(self) -> StoreStats:
        def body(conn: sqlite3.Connection, now: int) -> StoreStats:
            counts = self._rows(conn, Q.STATS_BY_STATUS)
            extra = self._rows(conn, Q.STATS_EXTRA, {"now": now})[0]
            return StoreStats(
                counts_by_status={r["status"]: int(r["n"]) for r in counts},
                active_claims=int(extra["active_claims"]),
                oldest_queued_at=extra["oldest_queued_at"],
                recoveries_last_hour=int(extra["recoveries_last_hour"]),
            )

        return await self._read(body)

    async def now(self) -> datetime:
        return await self._read(lambda conn, now: from_micros(now))
