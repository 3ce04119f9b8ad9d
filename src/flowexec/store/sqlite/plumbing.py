"""What the SQLite primitives' mixins need of the store below them (store/sqlite/backend.py)."""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from typing import Any

from flowexec.store.rows import Row
from flowexec.store.sqlite.connection import SqliteConnection
from flowexec.store.sqlite.options import SqliteOptions


class SqlitePlumbing(ABC):
    _db: SqliteConnection
    _options: SqliteOptions

    @abstractmethod
    def _rows(self, conn: sqlite3.Connection, template: str, params: Any = ()) -> list[Row]:
        """One statement's rows inside a transaction the caller holds."""

    @abstractmethod
    async def _read_rows(self, template: str, params: dict[str, Any] | None = None) -> list[Row]:
        """One statement's rows in a read transaction."""

    @abstractmethod
    async def _write_rows(self, template: str, params: dict[str, Any]) -> list[Row]:
        """One statement's rows in a write transaction."""

    @abstractmethod
    async def _write_count(self, template: str, params: dict[str, Any] | None = None) -> int:
        """One statement's row count in a write transaction."""
