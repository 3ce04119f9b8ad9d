"""The PostgreSQL statements of durable steps (docs/architecture.md §11).

Checkpoints are written by `APPEND_EVENTS` (queries.py), in the same statement as the run's
events and under the same fence; `RECORD_CHECKPOINTS` is the part of it that inserts them.
"""

from __future__ import annotations

RECORD_CHECKPOINTS = """
        INSERT INTO {{p}}execution_checkpoints (execution_id, node_id, result, attempt,
                                                recorded_at)
        SELECT b.id, c.key, c.value, b.epoch, now()
        FROM {batch} AS b, jsonb_each(b.checkpoints) AS c (key, value)
        ON CONFLICT (execution_id, node_id) DO NOTHING
"""
"""A node recorded twice keeps its first result: the one the flow went on with."""

CHECKPOINTS = """
    SELECT node_id, result FROM {p}execution_checkpoints WHERE execution_id = %(id)s
"""
