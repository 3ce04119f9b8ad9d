"""How the SQLite backend stores things and plans its hot queries."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlite_helpers import raw_connection

from flowexec import ExecutionStatus, UpdateExecutionStatusParams, new_execution, open_store
from flowexec.store.sqlite import SqliteExecutionStore
from flowexec.store.sqlite import queries as Q
from flowexec.store.sqlite.codec import from_micros, to_micros
from flowexec.store.sqlite.status_listing import ROOTS_IN_STATUS

PREFIX = "flowexec_"
TIME_COLUMNS = {
    "executions": ["created_at", "updated_at", "started_at", "completed_at", "last_failure_at",
                   "processing_started_at", "available_at", "lease_claimed_at",
                   "lease_expires_at", "lease_heartbeat_at"],
    "execution_recovery": ["recovered_at"],
}


async def _sqlite(path: Path, **options: object) -> SqliteExecutionStore:
    store = await open_store(f"sqlite:///{path}", **options)  # type: ignore[arg-type]
    assert isinstance(store, SqliteExecutionStore)
    return store


async def test_timestamps_are_integer_microseconds_and_json_is_text(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    store = await _sqlite(path)
    try:
        execution = new_execution(
            "flow", "owner", options={"debug": True}, integration={"k": [1, "two"]}
        )
        await store.create(execution)
        claim = (await store.claim_next("worker", 60_000))[0]
        params = UpdateExecutionStatusParams(
            execution.id, ExecutionStatus.RUNNING, worker_id="worker", epoch=claim.epoch
        )
        await store.update_execution_status(params)
        await store.update_failure_info(execution.id, 1, "flaky")
        await store.record_recovery(execution.id, "recoverer", "manual")
        done = UpdateExecutionStatusParams(
            execution.id, ExecutionStatus.COMPLETED, worker_id="worker", epoch=claim.epoch,
            result={"rows": 42},
        )
        await store.update_execution_status(done)
        got = await store.get(execution.id)
    finally:
        await store.close()
    assert got is not None

    conn = raw_connection(path)
    try:
        for table, columns in TIME_COLUMNS.items():
            for column in columns:
                kinds = conn.execute(
                    f"SELECT DISTINCT typeof({column}) FROM {PREFIX}{table}"
                ).fetchall()
                expected = [("null",)] if column == "processing_started_at" else [("integer",)]
                assert kinds == expected, f"{table}.{column}: {kinds}"
        row = conn.execute(
            f"SELECT created_at, options, integration, result FROM {PREFIX}executions"
        ).fetchone()
    finally:
        conn.close()
    assert row[0] == to_micros(execution.created_at)
    assert from_micros(row[0]) == execution.created_at  # microseconds survive exactly
    assert json.loads(row[1]) == {"debug": True}
    assert json.loads(row[2]) == {"k": [1, "two"]}
    assert json.loads(row[3]) == {"rows": 42}
    assert got.result == {"rows": 42} and got.integration == {"k": [1, "two"]}


async def test_now_is_sqlite_clock_and_strictly_increasing(tmp_path: Path) -> None:
    store = await _sqlite(tmp_path / "x.db")
    try:
        readings = [await store.now() for _ in range(50)]
    finally:
        await store.close()
    assert readings == sorted(set(readings)), "the store's clock went backwards or stood still"
    conn = sqlite3.connect(":memory:")
    sqlite_now = from_micros(conn.execute(Q.NOW_MICROS).fetchone()[0])
    conn.close()
    assert abs((sqlite_now - readings[-1]).total_seconds()) < 1


async def test_deep_trees_are_deleted_and_purged_whole(tmp_path: Path) -> None:
    """Deeper than SQLite's 1000-level limit on cascading deletes through the parent key."""
    store = await _sqlite(tmp_path / "x.db", max_depth=1500)
    try:
        chain = [new_execution("flow", "owner")]
        for _ in range(1200):
            chain.append(new_execution("flow", "owner", parent=chain[-1], max_depth=1500))
        for execution in chain:
            await store.create(execution, start=False)
        tree = await store.get_execution_tree(chain[0].id, max_nodes=2000)
        assert [node.level for node in tree] == list(range(1201))
        assert await store.delete(chain[600].id) is True
        assert await store.get(chain[599].id) is not None
        assert all([await store.get(e.id) is None for e in chain[600:]])
        before_stopping = await store.now()
        for execution in chain[:600]:
            params = UpdateExecutionStatusParams(execution.id, ExecutionStatus.STOPPED)
            assert await store.update_execution_status(params)
        assert await store.purge_finished(before_stopping) == 0
        assert await store.purge_finished(await store.now()) == 1
        assert await store.get(chain[0].id) is None
        assert await store.get(chain[599].id) is None
    finally:
        await store.close()


def _plan(conn: sqlite3.Connection, template: str, params: dict[str, object]) -> str:
    rows = conn.execute(
        "EXPLAIN QUERY PLAN " + template.replace("{p}", PREFIX), params
    ).fetchall()
    return "\n".join(str(r[3]) for r in rows)


HOT_QUERIES = [
    ("claim_next", Q.PICK_RUNNABLE, {"now": 0, "limit": 10}, "executions_runnable"),
    (
        "claim_next for flows",
        Q.PICK_RUNNABLE_FOR_FLOWS,
        {"now": 0, "limit": 10, "flow_ids": '["a"]'},
        "executions_runnable",
    ),
    ("recovery sweep", Q.RECOVERY_VICTIMS, {"now": 0, "limit": 10}, "executions_recoverable"),
    ("recovery listing", Q.NEEDING_RECOVERY, {"now": 0, "limit": 10}, "executions_recoverable"),
    *[
        (
            f"root listing {key}",
            template,
            {"flow_id": "f", "limit": 50, "after_created": 0, "after_id": "", "owner_id": "o",
             "status": "failed"},
            "executions_roots",
        )
        for key, template in Q.ROOT_PAGE.items()
    ],
    ("expire claims", Q.EXPIRE_CLAIMS, {"now": 0}, "executions_leased"),
    ("active claims", Q.ACTIVE_CLAIMS, {"now": 0}, "executions_leased"),
    ("retention", Q.PURGE_ROOTS, {"before": 0, "limit": 10, "statuses": '["failed"]'},
     "executions_finished_roots"),
    *[
        (
            f"roots in status {key}",
            template,
            {"status": "failed", "flow_id": "f", "limit": 50, "after_created": 0, "after_id": ""},
            "executions_roots_by_status",
        )
        for key, template in ROOTS_IN_STATUS.items()
    ],
]


@pytest.mark.parametrize(
    ("name", "template", "params", "index"), HOT_QUERIES, ids=[q[0] for q in HOT_QUERIES]
)
async def test_hot_queries_use_their_index(
    tmp_path: Path, name: str, template: str, params: dict[str, object], index: str
) -> None:
    path = tmp_path / "x.db"
    store = await _sqlite(path)
    try:
        for n in range(200):  # mostly finished work, as in a long-lived database
            execution = new_execution("f", "o")
            await store.create(execution)
            if n % 10:
                done = UpdateExecutionStatusParams(execution.id, ExecutionStatus.STOPPED)
                await store.update_execution_status(done)
    finally:
        await store.close()
    conn = raw_connection(path)
    try:
        plan = _plan(conn, template, params)
    finally:
        conn.close()
    assert PREFIX + index in plan, f"{name} does not use {index}:\n{plan}"
    assert f"SCAN {PREFIX}executions\n" not in plan + "\n", f"{name} scans:\n{plan}"
