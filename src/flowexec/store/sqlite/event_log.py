"""Appending to the event log inside a SQLite write transaction.

`BEGIN IMMEDIATE` holds the database's write lock, so reserving indexes on the execution row
(`event_count`) and inserting the events cannot interleave with another appender: the indexes
are gapless (docs/architecture.md §2).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from flowexec.store.lifecycle import EventSpec
from flowexec.store.sqlite import queries as Q


def log_events(
    conn: sqlite3.Connection,
    sql: Callable[[str], str],
    now: int,
    execution_id: str,
    attempt: int,
    events: list[EventSpec],
    *,
    fence_worker: str | None = None,
) -> bool:
    """Append `events` at the execution's next indexes; with `fence_worker`, only while that
    worker holds the claim of epoch `attempt`. True if appended."""
    params = {"id": execution_id, "n": len(events)}
    if fence_worker is None:
        reserved = conn.execute(sql(Q.RESERVE_EVENTS), params).fetchall()
    else:
        fenced = {**params, "worker_id": fence_worker, "epoch": attempt}
        reserved = conn.execute(sql(Q.RESERVE_EVENTS_FENCED), fenced).fetchall()
    if not reserved:
        return False
    first = int(reserved[0]["event_count"]) - len(events)
    conn.executemany(
        sql(Q.INSERT_EVENT),
        [
            {
                "id": execution_id,
                "idx": first + n,
                "type": event["type"],
                "now": now,
                "attempt": attempt,
                "data": json.dumps(event["data"]),
            }
            for n, event in enumerate(events)
        ],
    )
    return True
