"""Durable steps on SQLite: recording node results inside the transaction that appends the
run's events (after its fence held), and the read of an execution's recorded nodes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

RECORD_CHECKPOINT = """
    INSERT INTO {p}execution_checkpoints (execution_id, node_id, result, attempt, recorded_at)
    VALUES (:id, :node_id, :result, :attempt, :now)
    ON CONFLICT (execution_id, node_id) DO NOTHING
"""
"""A node recorded twice keeps its first result: the one the flow went on with."""

CHECKPOINTS = "SELECT node_id, result FROM {p}execution_checkpoints WHERE execution_id = :id"


def record_checkpoints(
    conn: sqlite3.Connection, sql: Callable[[str], str], now: int, entries: list[dict[str, Any]]
) -> None:
    """Insert the checkpoints of `entries` (`appended_events` entries whose fence held)."""
    conn.executemany(
        sql(RECORD_CHECKPOINT),
        [
            {
                "id": entry["id"],
                "node_id": node_id,
                "result": json.dumps(result),
                "attempt": entry["epoch"],
                "now": now,
            }
            for entry in entries
            for node_id, result in entry["checkpoints"].items()
        ],
    )
