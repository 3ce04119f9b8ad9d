"""SQLite migrations: step by step equals fresh, idempotent, per table prefix, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlite_helpers import raw_connection, schema

from flowexec import new_execution, open_store
from flowexec.errors import ConfigError, StoreUnavailable
from flowexec.store.migrations import load_migrations
from flowexec.store.sqlite.codec import split_statements

PREFIX = "flowexec_"
MIGRATIONS = load_migrations("flowexec.store.sqlite", PREFIX)


def _versions(path: Path, prefix: str = PREFIX) -> list[tuple[int, str]]:
    conn = raw_connection(path)
    try:
        rows = conn.execute(
            f"SELECT version, name FROM {prefix}schema_migrations ORDER BY version"
        ).fetchall()
    finally:
        conn.close()
    return [(int(v), str(n)) for v, n in rows]


async def test_stepwise_migration_gives_the_fresh_schema(tmp_path: Path) -> None:
    fresh, stepwise = tmp_path / "fresh.db", tmp_path / "stepwise.db"
    async with await open_store(f"sqlite:///{fresh}"):
        pass
    async with await open_store(f"sqlite:///{stepwise}", migrate=False) as store:
        assert await store.migrate(target_version=0) == []
        for migration in MIGRATIONS:
            applied = await store.migrate(target_version=migration.version)
            assert applied == [migration.name]
    assert schema(stepwise) == schema(fresh)
    assert _versions(stepwise) == _versions(fresh) == [(m.version, m.name) for m in MIGRATIONS]


async def test_the_schema_has_the_postgres_tables_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with await open_store(f"sqlite:///{path}"):
        pass
    names = {(kind, name) for kind, name, _, _ in schema(path)}
    tables = {
        "executions", "execution_recovery", "schema_migrations",
        "schedule_slots",
    }
    assert {("table", PREFIX + t) for t in tables} <= names
    indexes = {
        "executions_runnable", "executions_recoverable", "executions_roots", "executions_tree",
        "executions_parent", "executions_finished_roots", "executions_leased",
        "execution_recovery_execution", "execution_recovery_recent",
        "executions_roots_by_status",
        "executions_idempotency", "executions_running_flow",
    }
    assert {n for k, n in names if k == "index" and not n.startswith("sqlite_")} == {
        PREFIX + i for i in indexes
    }


async def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with await open_store(f"sqlite:///{path}") as store:
        execution = new_execution("flow", "owner")
        await store.create(execution)
        before = schema(path)
        assert await store.migrate() == []
        assert await store.migrate(target_version=len(MIGRATIONS)) == []
        assert await store.get(execution.id) is not None
    async with await open_store(f"sqlite:///{path}") as store:
        assert await store.get(execution.id) is not None
    assert schema(path) == before


@pytest.mark.parametrize("target", [-1, len(MIGRATIONS) + 1])
async def test_bad_target_version_is_a_config_error_and_applies_nothing(
    tmp_path: Path, target: int
) -> None:
    path = tmp_path / "x.db"
    async with await open_store(f"sqlite:///{path}", migrate=False) as store:
        with pytest.raises(ConfigError, match="target_version"):
            await store.migrate(target_version=target)
    assert [t for t in schema(path) if t[0] == "table"] == []


async def test_unmigrated_store_says_how_to_migrate(tmp_path: Path) -> None:
    async with await open_store(f"sqlite:///{tmp_path / 'x.db'}", migrate=False) as store:
        with pytest.raises(StoreUnavailable, match="flowexec migrate"):
            await store.get("EX1")


async def test_table_prefixes_share_a_file_without_sharing_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    async with await open_store(url, table_prefix="a_") as a, await open_store(
        url, table_prefix="b_"
    ) as b:
        execution = new_execution("flow", "owner")
        await a.create(execution)
        assert await b.get(execution.id) is None
        assert [c.execution_id for c in await a.claim_next("w", 1000)] == [execution.id]
        assert await b.claim_next("w", 1000) == []
    assert _versions(tmp_path / "x.db", "a_") == _versions(tmp_path / "x.db", "b_")


def test_split_statements_respects_quotes_comments_and_triggers() -> None:
    script = """
        -- a comment; with a semicolon
        CREATE TABLE t (x TEXT DEFAULT 'a;b');
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN
            UPDATE t SET x = 'c;d'; DELETE FROM t WHERE x = ';';
        END;
        /* block; comment */ CREATE INDEX i ON t (x);
        -- trailing comment
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[0].endswith("DEFAULT 'a;b');")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2].endswith("CREATE INDEX i ON t (x);")


def test_split_statements_rejects_an_unfinished_statement() -> None:
    with pytest.raises(ConfigError, match="incomplete statement"):
        split_statements("CREATE TABLE t (x TEXT);\nCREATE TABLE u (y")
