"""The embedded SQLite backend."""

from flowexec.store.sqlite.store import SqliteExecutionStore

__all__ = ["SqliteExecutionStore"]
