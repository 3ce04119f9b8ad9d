"""The PostgreSQL side of the suite: a server, a database of our own, and fast bulk loads.

The admin connection is `FLOWEXEC_BENCH_POSTGRES_URL` or `postgresql://root@127.0.0.1:5432/test`;
when no server answers there, one is started from the `pgserver` package (as the tests do).
The suite creates `flowexec_bench_<pid>` and drops it at the end, whatever happened.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from benchmarks._common import process_cpu_s

DEFAULT_ADMIN_URL = "postgresql://root@127.0.0.1:5432/test"
ENV_ADMIN_URL = "FLOWEXEC_BENCH_POSTGRES_URL"

AsyncConn = psycopg.AsyncConnection[tuple[Any, ...]]


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def _server() -> Iterator[tuple[str, str]]:
    """(admin url, where it came from)."""
    url = os.environ.get(ENV_ADMIN_URL) or DEFAULT_ADMIN_URL
    if _reachable(url):
        yield url, f"{'$' + ENV_ADMIN_URL if os.environ.get(ENV_ADMIN_URL) else 'default'} server"
        return
    if os.environ.get(ENV_ADMIN_URL):
        raise RuntimeError(f"${ENV_ADMIN_URL} is set but no PostgreSQL answers there")
    import pgserver

    data_dir = tempfile.mkdtemp(prefix="flowexec-bench-pgserver-")
    server = pgserver.get_server(  # type: ignore[attr-defined]
        data_dir, cleanup_mode="delete")
    try:
        yield str(server.get_uri()), "pgserver (started for this run)"
    finally:
        server.cleanup()


@dataclass(slots=True)
class Use:
    """CPU seconds spent in a measured block (NaN when /proc of the server is unreadable), and
    the WAL the server wrote meanwhile (the whole cluster's: keep the machine otherwise idle)."""

    server_s: float = math.nan
    client_s: float = math.nan
    wal_bytes: float = math.nan

    def per(self, count: int) -> tuple[float, float]:
        """(server, client) CPU milliseconds per operation."""
        return self.server_s * 1000 / count, self.client_s * 1000 / count


@dataclass(frozen=True, slots=True)
class PostgresBench:
    """The bench database: its URL, facts about the server, and table housekeeping."""

    url: str
    origin: str
    server_version: str
    settings: dict[str, str]

    async def connect(self) -> AsyncConn:
        return await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, options="-c TimeZone=UTC"
        )

    async def execute(self, statement: str, params: dict[str, Any] | None = None) -> int:
        """One statement on a fresh connection; returns the row count."""
        async with await self.connect() as conn:
            cur = await conn.execute(statement.encode(), params)
            return cur.rowcount

    async def backend_pids(self) -> list[int]:
        """Every server process connected to the bench database."""
        async with await self.connect() as conn:
            cur = await conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
            return [int(row[0]) for row in await cur.fetchall()]

    async def wal_position(self) -> int:
        async with await self.connect() as conn:
            cur = await conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

    @asynccontextmanager
    async def cpu(self) -> AsyncIterator[Use]:
        """CPU used during the block by the bench database's server processes and by us, and
        the WAL written.

        Server processes are those connected when the block starts (keep connections open
        across it); idle ones add nothing. Other load on the machine hardly moves CPU time,
        unlike throughput, so these figures are the steady ones on a shared box.
        """
        pids = await self.backend_pids()

        def server() -> float:
            times = [process_cpu_s(pid) for pid in pids]
            return math.nan if None in times else sum(t for t in times if t is not None)

        use = Use()
        wal_before = await self.wal_position()
        server_before, client_before = server(), time.process_time()
        yield use
        use.server_s = server() - server_before
        use.client_s = time.process_time() - client_before
        use.wal_bytes = await self.wal_position() - wal_before

    async def drop_tables(self, prefix: str) -> None:
        async with await self.connect() as conn:
            cur = await conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND starts_with(tablename, %s)",
                (prefix,),
            )
            for (name,) in await cur.fetchall():
                await conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )


@contextmanager
def bench_database() -> Iterator[PostgresBench]:
    with _server() as (admin_url, origin):
        name = f"flowexec_bench_{os.getpid()}"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
        try:
            with psycopg.connect(url) as conn:
                version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
                settings = {
                    setting: str(conn.execute(
                        sql.SQL("SHOW {}").format(sql.Identifier(setting))
                    ).fetchone()[0])  # type: ignore[index]
                    for setting in ("fsync", "synchronous_commit", "shared_buffers",
                                    "max_connections")
                }
            yield PostgresBench(url=url, origin=origin, server_version=version, settings=settings)
        finally:
            with suppress(psycopg.Error), psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
