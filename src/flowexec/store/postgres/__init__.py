"""The PostgreSQL backend."""

from flowexec.store.postgres.store import PostgresExecutionStore

__all__ = ["PostgresExecutionStore"]
