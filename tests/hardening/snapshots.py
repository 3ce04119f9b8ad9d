"""Every table of one installation, exactly as stored, to show that a refused input wrote
nothing: PostgreSQL rows as their text form, SQLite rows with their rowid and typed values."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg

Snapshot = dict[str, list[Any]]


def snapshot(url: str, prefix: str) -> Snapshot:
    if url.startswith("sqlite"):
        return _sqlite_snapshot(url.removeprefix("sqlite:///"), prefix)
    return _postgres_snapshot(url, prefix)


def _postgres_snapshot(url: str, prefix: str) -> Snapshot:
    with psycopg.connect(url, autocommit=True) as pg:
        names = [
            r[0]
            for r in pg.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND starts_with(tablename, %s) ORDER BY tablename",
                (prefix,),
            ).fetchall()
        ]
        return {
            name: [r[0] for r in pg.execute(f'SELECT t::text FROM "{name}" t ORDER BY 1')]
            for name in names
        }


def _sqlite_snapshot(path: str, prefix: str) -> Snapshot:
    conn = sqlite3.connect(path, timeout=30)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?"
                " ORDER BY name",
                (len(prefix), prefix),
            )
        ]
        tables: Snapshot = {}
        for name in names:
            rows = conn.execute(f'SELECT * FROM "{name}"').fetchall()  # some have no rowid
            typed = [tuple((type(v).__name__, v) for v in row) for row in rows]
            tables[name] = sorted(typed, key=repr)
        return tables
    finally:
        conn.close()
