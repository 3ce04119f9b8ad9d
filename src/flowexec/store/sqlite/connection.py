"""One SQLite connection on its own thread: transactions, retries while locked, the clock.

The event loop never waits on SQLite and the callers of one store are serialised. A writer
that stays locked out past the busy timeout retries its whole transaction with jittered
backoff, so a caller never sees "database is locked"; errors a retry cannot fix become
`StoreUnavailable` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from flowexec.errors import ConfigError, StoreUnavailable
from flowexec.store.sqlite import queries as Q
from flowexec.store.sqlite.codec import decode_row
from flowexec.store.sqlite.options import SqliteOptions
from flowexec.store.urls import SqliteTarget

T = TypeVar("T")
Body = Callable[[sqlite3.Connection, int], T]
"""A transaction's work: the connection and the database clock (microseconds) at its start."""

# STRICT tables (3.37), RETURNING (3.35), UPDATE ... FROM (3.33), upsert (3.24).
MIN_SQLITE_VERSION = (3, 37, 0)

# Primary result codes (https://sqlite.org/rescode.html).
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_PROTOCOL = 15
SQLITE_NOLFS = 22
SQLITE_AUTH = 23
SQLITE_NOTADB = 26
PRIMARY_CODE_MASK = 0xFF
"""Extended result codes carry the primary code in their low byte."""

_BUSY_CODES = frozenset({SQLITE_BUSY, SQLITE_LOCKED})
_UNAVAILABLE_CODES = frozenset(
    {SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN,
     SQLITE_PROTOCOL, SQLITE_NOLFS, SQLITE_AUTH, SQLITE_NOTADB}
)

OWNER_ONLY = 0o600
"""A new database file's mode; SQLite gives its WAL and shared-memory files the same."""

FIRST_RETRY_S = 0.001
MAX_RETRY_S = 0.05
CACHED_STATEMENTS = 256


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & PRIMARY_CODE_MASK if isinstance(code, int) else None


def _is_busy(exc: sqlite3.Error) -> bool:
    primary = _primary_code(exc)
    if primary is not None:
        return primary in _BUSY_CODES
    message = str(exc)
    return "database is locked" in message or "database table is locked" in message


class SqliteConnection:
    """The store's connection and the one thread that uses it."""

    def __init__(
        self,
        target: SqliteTarget,
        *,
        table_prefix: str,
        options: SqliteOptions,
    ) -> None:
        self.target = target
        self._table_prefix = table_prefix
        self._busy_timeout_ms = options.busy_timeout_ms
        self._lock_timeout_s = options.lock_timeout_s
        self._synchronous = options.synchronous
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"flowexec-sqlite-{table_prefix}"
        )
        self._conn: sqlite3.Connection | None = None  # touched only on the executor's thread
        self._last_now = 0  # the latest clock reading handed out, in microseconds
        self.data_version = 0  # the last PRAGMA data_version seen; others' commits change it
        self.closed = False
        self.read_only = False
        """Opened read-only: the file exists and this process may read it but not write it."""

    def closed_error(self) -> StoreUnavailable:
        return StoreUnavailable(f"the SQLite store on {self.target.display} is closed")

    async def call(self, fn: Callable[[], T]) -> T:
        if self.closed:
            raise self.closed_error()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except RuntimeError as exc:
            if self.closed:  # closed while the call was being submitted
                raise self.closed_error() from exc
            raise

    async def write(self, body: Body[T]) -> T:
        return await self.call(lambda: self._transaction(body, "BEGIN IMMEDIATE"))

    async def read(self, body: Body[T]) -> T:
        return await self.call(lambda: self._transaction(body, "BEGIN"))

    async def open(self) -> None:
        await self.call(self._connect)

    async def close(self) -> None:
        self.closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._disconnect)
        finally:
            self._executor.shutdown(wait=False)

    async def poll_data_version(self) -> int:
        """`PRAGMA data_version` now: it changes when another connection commits."""
        self.data_version = await self.call(lambda: self._retrying(self._read_data_version))
        return self.data_version

    # ------------------------------------------------------------ on the thread

    def _connect(self) -> None:
        """Open the connection; typed errors for unusable files."""
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise ConfigError(
                f"flowexec needs SQLite {'.'.join(map(str, MIN_SQLITE_VERSION))} or newer; "
                f"this Python has {sqlite3.sqlite_version}"
            )
        path = self.target.path
        if path is not None:
            try:
                self.read_only = _check_path(path)
                if not self.read_only:
                    _create_owner_only(path)
            except OSError as exc:  # a name too long for the file system, say
                raise ConfigError(
                    f"cannot open SQLite database {path}: {exc.strerror or exc}"
                ) from None
        if not self.read_only:
            self._retrying(lambda: self._open_connection(None))
            return
        try:
            self._retrying(lambda: self._open_connection("mode=ro"))
        except StoreUnavailable:
            # No shared-memory file to read the WAL with, and none may be created here.
            self._retrying(lambda: self._open_connection("immutable=1"))

    def _open_connection(self, read_only_mode: str | None) -> None:
        """`read_only_mode`: None for a read-write connection, else the URI parameter."""
        path = self.target.path
        database = ":memory:" if path is None else str(path)
        if read_only_mode is not None:
            database = f"{Path(database).as_uri()}?{read_only_mode}"
        conn = sqlite3.connect(
            database,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,  # only the worker thread uses it; close may come late
            cached_statements=CACHED_STATEMENTS,
            uri=read_only_mode is not None,
        )
        try:
            conn.row_factory = decode_row
            conn.execute("PRAGMA foreign_keys = ON")
            if path is not None and read_only_mode is None:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()["journal_mode"]
                if str(mode).lower() != "wal":
                    raise StoreUnavailable(
                        f"SQLite database {self.target.path} cannot use WAL mode "
                        f"(journal_mode is {mode!r}); is it on a network file system?"
                    )
            conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            self.data_version = int(conn.execute(Q.DATA_VERSION).fetchone()["data_version"])
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

    def _read_data_version(self) -> int:
        conn = self._conn
        if conn is None:
            raise self.closed_error()
        return int(conn.execute(Q.DATA_VERSION).fetchone()["data_version"])

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` again, with jittered backoff, while the database stays locked."""
        deadline: float | None = None
        delay = FIRST_RETRY_S
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
                        f"SQLite database {self.target.display} stayed locked for "
                        f"{self._lock_timeout_s:g} s: another connection holds a write "
                        "transaction"
                    ) from exc
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter spreads retrying processes
            delay = min(delay * 2, MAX_RETRY_S)

    def _transaction(self, body: Body[T], begin: str) -> T:
        def attempt() -> T:
            conn = self._conn
            if conn is None:
                raise self.closed_error()
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
        where = self.target.display
        primary = _primary_code(exc)
        if primary in (SQLITE_NOTADB, SQLITE_CORRUPT):
            return StoreUnavailable(
                f"{where} is not a usable SQLite database (not a database, corrupted or "
                f"encrypted): {exc}"
            )
        if primary == SQLITE_READONLY:
            return StoreUnavailable(
                f"SQLite database {where} is read-only for this process: {exc}"
            )
        if primary in _UNAVAILABLE_CODES:
            return StoreUnavailable(f"SQLite database {where} failed: {exc}")
        if isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc):
            return StoreUnavailable(
                f"flowexec tables with prefix {self._table_prefix!r} do not exist in {where}: "
                "run `flowexec migrate` or open the store with migrate=True"
            )
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
            return self.closed_error()
        return None


def _create_owner_only(path: Path) -> None:
    """Create a missing database file readable and writable by its owner alone, whatever
    the umask; an existing file keeps the mode its owner gave it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, OWNER_ONLY)
    except FileExistsError:
        return
    os.close(fd)


def _check_path(path: Path) -> bool:
    """Whether the database must be opened read-only; typed errors for unusable paths."""
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
        if not os.access(path, os.R_OK):
            raise StoreUnavailable(
                f"cannot open SQLite database {path}: the file is not readable by this process"
            )
        return not os.access(path, os.W_OK)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreUnavailable(
            f"cannot create SQLite database {path}: directory {parent} is not writable"
        )
    return False
