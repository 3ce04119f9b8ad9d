"""The SQLite statements of scheduling: picks within per-flow running limits, cron slots.

Names and conventions as in `queries.py`. `BEGIN IMMEDIATE` holds the whole database, so a
limited pick counts running executions that no other claimer can change meanwhile.
"""

from __future__ import annotations

from flowexec.store.sqlite.queries import _TAKEOVER


def _pick_within_limits(flow_filter: str) -> str:
    """As `_pick` in `queries.py`, but a limited flow (`:limits`, a JSON array of
    [flow_id, max_running] pairs) is passed over once it has no room, and gives at most its
    room: `max_running` less its running executions."""
    return f"""
    WITH rooms AS (
        SELECT json_extract(l.value, '$[0]') AS flow_id,
               json_extract(l.value, '$[1]') - (
                   SELECT count(*) FROM {{p}}executions r
                   WHERE r.flow_id = json_extract(l.value, '$[0]') AND r.status = 'running'
               ) AS room
        FROM json_each(:limits) AS l
    ), candidates AS (
        SELECT e.id, e.flow_id, e.priority, e.available_at FROM {{p}}executions e
        WHERE e.status = 'created' AND e.available_at <= :now {flow_filter}
          AND {_TAKEOVER}
          AND NOT EXISTS (
              SELECT 1 FROM rooms WHERE rooms.flow_id = e.flow_id AND rooms.room <= 0)
        ORDER BY e.priority, e.available_at, e.id
        LIMIT :limit
    ), ranked AS (
        SELECT candidates.*, row_number() OVER (
            PARTITION BY flow_id ORDER BY priority, available_at, id) AS nth
        FROM candidates
    )
    SELECT ranked.id FROM ranked LEFT JOIN rooms ON rooms.flow_id = ranked.flow_id
    WHERE rooms.room IS NULL OR ranked.nth <= rooms.room
    ORDER BY ranked.priority, ranked.available_at, ranked.id
    """


PICK_WITHIN_LIMITS = _pick_within_limits("")
PICK_WITHIN_LIMITS_FOR_FLOWS = _pick_within_limits(
    "AND e.flow_id IN (SELECT value FROM json_each(:flow_ids))"
)

INSERT_SLOT = """
    INSERT INTO {p}schedule_slots (schedule_id, slot_at, execution_id, created_at)
    VALUES (:schedule_id, :slot_at, :id, :now)
    ON CONFLICT DO NOTHING
    RETURNING execution_id
"""

LAST_SLOTS = """
    SELECT s.schedule_id, s.slot_at, s.execution_id, s.created_at
    FROM {p}schedule_slots s
    WHERE s.schedule_id IN (SELECT value FROM json_each(:ids))
      AND s.slot_at = (SELECT max(m.slot_at) FROM {p}schedule_slots m
                       WHERE m.schedule_id = s.schedule_id)
"""
