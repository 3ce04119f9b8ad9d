"""The app the recovery tests run in worker subprocesses (`python chaos_app.py`).

Configured by environment:
- RECOVERY_TEST_URL, RECOVERY_TEST_PREFIX: the store;
- RECOVERY_TEST_MARKS: where runs record their side effects (a PostgreSQL URL, or the path
  of an SQLite file of their own);
- RECOVERY_TEST_WORKER: JSON keyword arguments for `Worker`.

Every run of `chaos` writes a `start` mark when it begins and a `finish` mark just before it
returns, keyed by (execution id, worker id, attempt), so that the test can count how many runs
each execution had and how many of them got as far as completing. The result names the run
whose completion the store accepted.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
import uuid
from typing import Any

import psycopg

from flowexec import App, FlowContext, Worker
from flowexec.runtime.logs import configure_logging

app = App()

FLOW = "chaos"
LINGER = "linger"
GHOST = "ghost"
"""A flow no worker registers: its executions are only ever moved by the tests and recovery."""
MARKS_RETRY_S = 60.0
"""How long a mark keeps trying through a database outage before the node gives up."""

_local = threading.local()


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


def read_marks(target: str, prefix: str) -> list[tuple[str, str, str, int, float]]:
    """(kind, execution_id, worker_id, attempt, at) of every mark."""
    query = f"SELECT kind, execution_id, worker_id, attempt, at FROM {marks_table(prefix)}"
    if _is_postgres(target):
        with psycopg.connect(target, autocommit=True) as pg:
            return [tuple(r) for r in pg.execute(query).fetchall()]  # type: ignore[misc]
    conn = sqlite3.connect(target, timeout=30)
    try:
        return [tuple(r) for r in conn.execute(query).fetchall()]
    finally:
        conn.close()


def mark(kind: str, execution_id: str, worker_id: str, attempt: int) -> None:
    """A sync node: one row per call, on a connection this thread keeps.

    The token makes a retried insert idempotent: an insert whose commit reached the server
    but whose answer was lost to an outage is not counted twice. Two runs never share a token.
    """
    target, prefix = os.environ["RECOVERY_TEST_MARKS"], os.environ["RECOVERY_TEST_PREFIX"]
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
                    pg = _local.pg = psycopg.connect(target, autocommit=True, connect_timeout=5)
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


@app.flow(FLOW, max_retries=1000)
async def chaos(ctx: FlowContext) -> dict[str, Any]:
    """A root's plan is its integration; a child's plan is the payload of its event.

    Plan: {"sleeps": [seconds, ...], "children": [{"i": n, "sleeps": [...]}, ...]}. The root
    emits its children after its first node, so that a run killed later re-emits them (the
    store must keep one of each).
    """
    event = ctx.event
    plan = event.payload if event is not None else ctx.integration
    assert isinstance(plan, dict)
    await ctx.node("begin", mark, "start", ctx.execution_id, ctx.worker_id, ctx.attempt)
    if event is None:
        for child in plan.get("children", []):
            await ctx.emit("spawn", child)
    for n, seconds in enumerate(plan["sleeps"]):
        await ctx.node(f"work-{n}", asyncio.sleep, float(seconds))
    await ctx.node("end", mark, "finish", ctx.execution_id, ctx.worker_id, ctx.attempt)
    return {"worker": ctx.worker_id, "attempt": ctx.attempt}


@app.flow(LINGER, max_retries=1000)
async def linger(ctx: FlowContext) -> dict[str, Any]:
    """Hangs on its first `hang_attempts` attempts (long enough to be killed mid-run), then
    completes at once."""
    assert ctx.integration is not None
    await ctx.node("begin", mark, "start", ctx.execution_id, ctx.worker_id, ctx.attempt)
    if ctx.attempt <= int(ctx.integration["hang_attempts"]):
        await ctx.node("hang", asyncio.sleep, 300)
    await ctx.node("end", mark, "finish", ctx.execution_id, ctx.worker_id, ctx.attempt)
    return {"worker": ctx.worker_id, "attempt": ctx.attempt}


async def main() -> None:
    configure_logging("INFO")
    settings = json.loads(os.environ.get("RECOVERY_TEST_WORKER", "{}"))
    worker = Worker(
        app,
        os.environ["RECOVERY_TEST_URL"],
        table_prefix=os.environ["RECOVERY_TEST_PREFIX"],
        **settings,
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
