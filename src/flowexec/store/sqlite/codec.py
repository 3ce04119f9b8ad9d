"""Values between Python and SQLite: integer-microsecond times, JSON text, migration scripts."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from flowexec.errors import ConfigError
from flowexec.store.rows import Row

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TIME_COLUMNS = frozenset(
    {
        "created_at", "updated_at", "started_at", "completed_at", "last_failure_at",
        "processing_started_at", "available_at", "claimed_at", "expires_at", "heartbeat_at",
        "recovered_at", "oldest_queued_at", "measured_at", "at", "last_seen_at", "last_served_at",
        "slot_at",
    }
)
_JSON_COLUMNS = frozenset(
    {"options", "integration", "external_events", "result", "data", "flow_ids"}
)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def to_micros(value: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (exact)."""
    return (value - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


class SqliteEncoding:
    """Parameters as SQLite binds them: times as microseconds, lists as JSON text."""

    def time(self, value: datetime) -> int:
        return to_micros(value)

    def array(self, values: list[Any]) -> str:
        return json.dumps(values)


SQLITE_ENCODING = SqliteEncoding()


def decode_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    """Rows as the shared layer wants them: aware UTC datetimes and decoded JSON."""
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
