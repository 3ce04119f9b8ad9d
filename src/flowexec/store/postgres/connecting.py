"""What every PostgreSQL connection of a store shares: its options and its error mapping."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import PoolTimeout

from flowexec.errors import ConfigError, StoreUnavailable
from flowexec.store.urls import redact

Connection = psycopg.AsyncConnection[dict[str, Any]]

OPERATIONAL_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
"""The server or the network failed: the store is unavailable, the caller may retry."""


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def bad_url(url: str, exc: BaseException) -> ConfigError:
    return ConfigError(f"bad PostgreSQL URL {redact(url)!r}: {first_line(exc)}")


def failed(url: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"PostgreSQL at {redact(url)} failed: {exc}")


def connect_kwargs(url: str) -> dict[str, Any]:
    """Autocommit, rows as dicts, and the URL's own `options` plus a UTC session time zone
    (so timestamps come back in UTC)."""
    try:
        options = conninfo_to_dict(url).get("options") or ""
    except psycopg.ProgrammingError as exc:
        raise bad_url(url, exc) from exc
    return {
        "autocommit": True,
        "row_factory": dict_row,
        "options": f"{options} -c TimeZone=UTC".strip(),
    }
