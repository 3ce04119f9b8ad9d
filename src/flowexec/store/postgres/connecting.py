"""What every PostgreSQL connection of a store shares: its options, its error mapping, and a
pool that comes back quickly after an outage."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.adapt import AdaptersMap, Buffer
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from flowexec.errors import ConfigError, StoreUnavailable, ValidationError
from flowexec.store.urls import redact

Connection = psycopg.AsyncConnection[dict[str, Any]]

OPERATIONAL_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
"""The server or the network failed: the store is unavailable, the caller may retry."""

MAX_RECONNECT_DELAY_S = 0.5
"""The pool's longest pause between attempts to replace a lost connection, so that workers
are claiming again within a second of the server answering (docs/architecture.md §7)."""


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def error_summary(exc: BaseException) -> str:
    """One line about a driver error that quotes no statement values: a connection failure's
    own first line (passwords hidden), otherwise only the error's kind and SQLSTATE, since a
    server's message and context may quote the JSON or the text that was refused."""
    if isinstance(exc, OPERATIONAL_ERRORS):
        return redact(first_line(exc))
    sqlstate = getattr(exc, "sqlstate", None)
    return type(exc).__name__ + (f" (SQLSTATE {sqlstate})" if sqlstate else "")


def bad_url(url: str) -> ConfigError:
    """psycopg's own words may quote a fragment of the string, a password's among them."""
    return ConfigError(
        f"bad PostgreSQL URL {redact(url)!r}: it is neither a postgresql:// URL nor a libpq "
        "key=value connection string"
    )


def failed(url: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"PostgreSQL at {redact(url)} failed: {error_summary(exc)}")


def refused(url: str, exc: psycopg.Error) -> StoreUnavailable | ValidationError:
    """A statement the server refused for something other than the connection."""
    if isinstance(exc, psycopg.DataError):
        return ValidationError(f"PostgreSQL refused a value: {error_summary(exc)}")
    return failed(url, exc)


class UtcTimestamptzLoader(TimestamptzLoader):
    """`timestamptz` in UTC whatever the session's TimeZone: setting it at connect time
    (`options=-c TimeZone=UTC`) is a startup parameter PgBouncer before 1.20 refuses."""

    def load(self, data: Buffer) -> datetime:
        return super().load(data).astimezone(UTC)


class UtcTimestamptzBinaryLoader(TimestamptzBinaryLoader):
    def load(self, data: Buffer) -> datetime:
        return super().load(data).astimezone(UTC)


ADAPTERS = AdaptersMap(psycopg.adapters)
ADAPTERS.register_loader("timestamptz", UtcTimestamptzLoader)
ADAPTERS.register_loader("timestamptz", UtcTimestamptzBinaryLoader)


def connect_kwargs(url: str, *, prepare: bool = True) -> dict[str, Any]:
    """Autocommit, rows as dicts, timestamps in UTC, and no startup parameter beyond the
    URL's own. `prepare=False` turns off psycopg's server-side prepared statements, which a
    transaction pooler would hand to another client's session. The URL must name a database
    (or `PGDATABASE` must): libpq would otherwise pick one after the user's name, which nobody
    chose to migrate."""
    try:
        conninfo = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise bad_url(url) from None
    if not conninfo.get("dbname") and not os.environ.get("PGDATABASE"):
        raise ConfigError(
            f"PostgreSQL URL {redact(url)!r} names no database: "
            "use postgresql://user@host:port/database"
        )
    kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row, "context": ADAPTERS}
    if not prepare:
        kwargs["prepare_threshold"] = None
    return kwargs


class QuickReconnectBackoff(AttemptWithBackoff):
    """psycopg_pool's backoff doubles from 1 s without bound, so after a 20 s outage a pool
    tries again only after about 31 s, when the leases of its worker have run out."""

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, MAX_RECONNECT_DELAY_S)


class ConnectionPool(AsyncConnectionPool[Connection]):
    """The pool, replacing lost connections at most `MAX_RECONNECT_DELAY_S` apart."""

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        if attempt is None:
            attempt = QuickReconnectBackoff(timeout=self.reconnect_timeout)
        await super()._add_connection(attempt, growing=growing)
