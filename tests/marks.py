"""Marks: the side effects the worker subprocesses' runs write, one row per mark, so that a test
can count how many runs each execution had and how many of them got as far as completing.

A mark is keyed by (execution id, worker id, attempt) and written to a table of the test's own:
in the store's database on PostgreSQL, in a file of its own beside an SQLite store.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import psycopg

Mark = tuple[str, str, str, int, float]
"""(kind, execution_id, worker_id, attempt, at): `kind` is "start" or "finish"."""

MARKS_RETRY_S = 60.0
"""How long a mark keeps trying through a database outage before the node gives up."""

_local = threading.local()


def marks_target(backend: str, store_url: str, tmp_path: Path) -> str:
    """Postgres: the store's own database; SQLite: a file of the test's own."""
    return store_url if backend == "postgres" else str(tmp_path / "marks.db")


def marks_table(prefix: str) -> str:
    return f"{prefix}test_marks"


def _is_postgres(target: str) -> bool:
    return target.startswith(("postgres://", "postgresql://"))


def create_marks_table(target: str, prefix: str) -> None:
    ddl = (
        f"CREATE TABLE {marks_table(prefix)} (token text PRIMARY KEY, kind text NOT NULL, "
        "execution_id text NOT NULL, worker_id text NOT NULL, attempt integer NOT NULL, "
        "pid integer NOT NULL, at double precision NOT NULL)"
    )
    if _is_postgres(target):
        with psycopg.connect(target, autocommit=True) as pg:
            pg.execute(ddl)
        return
    conn = sqlite3.connect(target, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(ddl)
    finally:
        conn.close()


def read_marks(target: str, prefix: str) -> list[Mark]:
    query = f"SELECT kind, execution_id, worker_id, attempt, at FROM {marks_table(prefix)}"
    if _is_postgres(target):
        with psycopg.connect(target, autocommit=True) as pg:
            return [tuple(r) for r in pg.execute(query).fetchall()]
    conn = sqlite3.connect(target, timeout=30)
    try:
        return [tuple(r) for r in conn.execute(query).fetchall()]
    finally:
        conn.close()


def mark(target: str, prefix: str, kind: str, execution_id: str, worker_id: str,
         attempt: int) -> None:
    """A sync node: one row per call, on a connection this thread keeps (without prepared
    statements, which a transaction pooler would hand to another client's session).

    The token makes a retried insert idempotent: an insert whose commit reached the server
    but whose answer was lost to an outage is not counted twice. Two runs never share a token.
    """
    row = (uuid.uuid4().hex, kind, execution_id, worker_id, attempt, os.getpid(), time.time())
    insert = (
        f"INSERT INTO {marks_table(prefix)} VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    )
    deadline = time.monotonic() + MARKS_RETRY_S
    while True:
        try:
            if _is_postgres(target):
                pg = getattr(_local, "pg", None)
                if pg is None or pg.closed:
                    pg = _local.pg = psycopg.connect(
                        target, autocommit=True, connect_timeout=5, prepare_threshold=None
                    )
                pg.execute(insert.replace("?", "%s"), row)
            else:
                conn = getattr(_local, "conn", None)
                if conn is None:
                    conn = _local.conn = sqlite3.connect(target, timeout=30)
                with conn:
                    conn.execute(insert, row)
            return
        except (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError):
            pg = getattr(_local, "pg", None)
            if pg is not None:
                pg.close()
                _local.pg = None
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def new_marks_table(backend: str, store_url: str, prefix: str, tmp_path: Path) -> str:
    """A test's marks table, created where `marks_target` puts it; its target."""
    target = marks_target(backend, store_url, tmp_path)
    create_marks_table(target, prefix)
    return target
