"""PostgreSQL migrations: stepwise equals fresh, and re-running or racing them is harmless."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable

import psycopg
import pytest

from flowexec.errors import ConfigError
from flowexec.store.migrations import load_migrations
from flowexec.store.protocol import ExecutionStore
from tests.conftest import drop_prefixed_tables

StoreFactory = Callable[..., Awaitable[ExecutionStore]]

MIGRATION_COUNT = len(load_migrations("flowexec.store.postgres", "x_"))


def schema_of(url: str, prefix: str) -> dict[str, list[tuple[object, ...]]]:
    """Columns, indexes and constraints of the prefixed tables, with the prefix taken out."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            """SELECT substr(table_name, length(%(p)s) + 1), column_name, data_type, is_nullable,
                      replace(coalesce(column_default, ''), %(p)s, '')
               FROM information_schema.columns
               WHERE table_schema = current_schema() AND starts_with(table_name, %(p)s)
                 AND table_name <> %(p)s || 'schema_migrations'
               ORDER BY 1, 2""",
            {"p": prefix},
        ).fetchall()
        indexes = conn.execute(
            """SELECT replace(indexdef, %(p)s, '') FROM pg_indexes
               WHERE schemaname = current_schema() AND starts_with(tablename, %(p)s)
                 AND tablename <> %(p)s || 'schema_migrations'
               ORDER BY 1""",
            {"p": prefix},
        ).fetchall()
        constraints = conn.execute(
            """SELECT replace(conname, %(p)s, ''), replace(pg_get_constraintdef(c.oid), %(p)s, '')
               FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
               WHERE starts_with(t.relname, %(p)s) AND t.relname <> %(p)s || 'schema_migrations'
               ORDER BY 1, 2""",
            {"p": prefix},
        ).fetchall()
    return {"columns": columns, "indexes": indexes, "constraints": constraints}


async def test_stepwise_migrations_give_the_fresh_schema(
    store_factory: StoreFactory, postgres_url: str, unique_prefix: str
) -> None:
    fresh_prefix = f"{unique_prefix}fresh_"
    step_prefix = f"{unique_prefix}step_"
    await store_factory(table_prefix=fresh_prefix)
    stepwise = await store_factory(table_prefix=step_prefix, migrate=False)
    applied: list[str] = []
    for version in range(1, MIGRATION_COUNT + 1):
        applied += await stepwise.migrate(target_version=version)
    assert len(applied) == MIGRATION_COUNT
    fresh, step = schema_of(postgres_url, fresh_prefix), schema_of(postgres_url, step_prefix)
    assert fresh["columns"], "the fresh install created no tables"
    assert step == fresh


async def test_migrating_again_applies_nothing(store: ExecutionStore) -> None:
    assert await store.migrate() == []


def test_two_processes_migrating_at_once_are_harmless(
    postgres_url: str, unique_prefix: str
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from flowexec import open_store

        async def main():
            store = await open_store({postgres_url!r}, table_prefix={unique_prefix!r},
                                     migrate=False)
            print(len(await store.migrate()))
            await store.close()

        asyncio.run(main())
        """
    )
    try:
        procs = [
            subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        assert sorted(outputs) == ["0", str(MIGRATION_COUNT)]
        with psycopg.connect(postgres_url) as conn:
            (count,) = conn.execute(
                f'SELECT count(*) FROM "{unique_prefix}schema_migrations"'
            ).fetchone() or (None,)
        assert count == MIGRATION_COUNT
    finally:
        drop_prefixed_tables(postgres_url, unique_prefix)


async def test_target_version_out_of_range_is_a_config_error(store: ExecutionStore) -> None:
    with pytest.raises(ConfigError, match="target_version"):
        await store.migrate(target_version=MIGRATION_COUNT + 1)
