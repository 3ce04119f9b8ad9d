"""Real databases for every test: PostgreSQL (given, or from `pgserver`) and SQLite files.

A test reaches its database by a `route`: PostgreSQL directly, PostgreSQL through a real
PgBouncer in transaction mode (tests/pgbouncer.py), or an SQLite file; `backend` and
`store_url` follow from it. Here the routes are direct PostgreSQL and SQLite; the directories
whose tests must hold behind a pooler too (conformance, runtime, the chaos test) take
`POOLED_ROUTES` in a `route` fixture of their own.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from flowexec import open_store
from flowexec.store.protocol import ExecutionStore
from tests.pgbouncer import HOW_TO_GET, PgBouncer, pgbouncer_program

BACKENDS = ["postgres", "sqlite"]
ROUTES = ["postgres", "sqlite"]
POOLED_ROUTES = [
    "postgres", pytest.param("pgbouncer", marks=pytest.mark.pgbouncer), "sqlite"
]

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """`FLOWEXEC_TEST_POSTGRES_URL` if set, else a throwaway server of our own."""
    url = os.environ.get("FLOWEXEC_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    import pgserver

    data_dir = tempfile.mkdtemp(prefix="flowexec-pgserver-")
    server = pgserver.get_server(data_dir, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def drop_prefixed_tables(url: str, prefix: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND starts_with(tablename, %s)",
            (prefix,),
        ).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')  # names from pg_tables


@pytest.fixture
def unique_prefix() -> str:
    return f"t{os.getpid()}_{next(_prefixes)}_"


@pytest.fixture(scope="session")
def pgbouncer(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    """One PgBouncer for the session, in front of the test PostgreSQL."""
    if pgbouncer_program() is None:
        pytest.skip(HOW_TO_GET)
    bouncer = PgBouncer(postgres_url, tmp_path_factory.mktemp("pgbouncer"))
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(route: str) -> str:
    return "sqlite" if route == "sqlite" else "postgres"


@pytest.fixture
def store_url(route: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if route == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    if route == "pgbouncer":
        return request.getfixturevalue("pgbouncer").url
    return f"sqlite:///{tmp_path / 'flowexec.db'}"


StoreFactory = Callable[..., Awaitable[ExecutionStore]]


@pytest.fixture
async def store_factory(
    backend: str, store_url: str, unique_prefix: str
) -> AsyncIterator[StoreFactory]:
    """Opens stores on one database and prefix (several stores = several connections)."""
    opened: list[ExecutionStore] = []

    async def factory(**kwargs: object) -> ExecutionStore:
        kwargs.setdefault("table_prefix", unique_prefix)
        store = await open_store(store_url, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
    if backend == "postgres":
        drop_prefixed_tables(store_url, unique_prefix)


@pytest.fixture
async def store(store_factory: StoreFactory) -> ExecutionStore:
    return await store_factory()
