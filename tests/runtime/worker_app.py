"""The app the multi-process tests run in worker subprocesses (`python worker_app.py`).

Configured by environment: FLOWEXEC_TEST_URL, FLOWEXEC_TEST_PREFIX and FLOWEXEC_TEST_WORKER
(JSON keyword arguments for `Worker`). Every run of `tree` records a side effect in a table of
the test's own, so that the test can count how often each execution really ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from typing import Any

import psycopg

from flowexec import App, FlowContext, Worker
from flowexec.runtime.logs import configure_logging

app = App()

MAX_DEPTH = 3
_local = threading.local()


def effects_table(prefix: str) -> str:
    return f"{prefix}test_effects"


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def create_effects_table(url: str, prefix: str) -> None:
    ddl = (
        f"CREATE TABLE {effects_table(prefix)} (execution_id text NOT NULL, "
        "worker_id text NOT NULL, depth integer NOT NULL)"
    )
    if url.startswith("sqlite"):
        with sqlite3.connect(_sqlite_path(url), timeout=30) as conn:
            conn.execute(ddl)
    else:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(ddl)


def read_effects(url: str, prefix: str) -> list[tuple[str, str, int]]:
    query = f"SELECT execution_id, worker_id, depth FROM {effects_table(prefix)}"
    if url.startswith("sqlite"):
        with sqlite3.connect(_sqlite_path(url), timeout=30) as conn:
            return [tuple(r) for r in conn.execute(query).fetchall()]
    with psycopg.connect(url, autocommit=True) as pg:
        return [tuple(r) for r in pg.execute(query).fetchall()]


def record_effect(url: str, prefix: str, execution_id: str, worker_id: str, depth: int) -> None:
    """A sync node: one row per run, on a connection this thread keeps."""
    insert = f"INSERT INTO {effects_table(prefix)} VALUES (?, ?, ?)"
    if url.startswith("sqlite"):
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = _local.conn = sqlite3.connect(_sqlite_path(url), timeout=30)
        with conn:
            conn.execute(insert, (execution_id, worker_id, depth))
        return
    pg = getattr(_local, "pg", None)
    if pg is None:
        pg = _local.pg = psycopg.connect(url, autocommit=True)
    pg.execute(insert.replace("?", "%s"), (execution_id, worker_id, depth))


@app.flow("tree", max_retries=3)
async def tree(ctx: FlowContext) -> dict[str, Any]:
    """Roots emit `fan` children; every descendant above MAX_DEPTH emits one more."""
    depth = ctx.execution.execution_depth
    url, prefix = os.environ["FLOWEXEC_TEST_URL"], os.environ["FLOWEXEC_TEST_PREFIX"]
    await ctx.node("record", record_effect, url, prefix, ctx.execution_id, ctx.worker_id, depth)
    assert ctx.integration is not None
    fan = int(ctx.integration["fan"]) if depth == 0 else 1
    emitted = 0
    if depth < MAX_DEPTH:
        for i in range(fan):
            await ctx.emit("branch", {"i": i, "depth": depth + 1})
            emitted += 1
    return {"depth": depth, "emitted": emitted}


@app.flow("sleeper", max_retries=3)
async def sleeper(ctx: FlowContext) -> str:
    assert ctx.integration is not None
    await ctx.node("sleep", asyncio.sleep, float(ctx.integration["seconds"]))
    return "woke up"


async def main() -> None:
    configure_logging("INFO")
    settings = json.loads(os.environ.get("FLOWEXEC_TEST_WORKER", "{}"))
    worker = Worker(
        app,
        os.environ["FLOWEXEC_TEST_URL"],
        table_prefix=os.environ["FLOWEXEC_TEST_PREFIX"],
        **settings,
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
