"""The PostgreSQL statements of scheduling: claims within per-flow running limits, cron slots.

Names and conventions as in `queries.py`, whose claim builder these statements reuse.
"""

from __future__ import annotations

from flowexec.store.postgres.queries import _FOR_FLOWS, _TAKEOVER, _claim

# Taken, in flow id order, by the statement before a limited claim in the same transaction: a
# concurrent claimer of the same flow waits, then counts on a snapshot that sees this claim.
# (Inside one statement the lock would come too late: its snapshot is taken before.)
LOCK_LIMITED_FLOWS = """
    SELECT pg_advisory_xact_lock(%(namespace)s, hashtext(flow))
    FROM unnest(%(limit_flows)s::text[]) AS flow
"""


def _pick_within_limits(flow_filter: str) -> str:
    """As `_pick_runnable_for_start`, but a limited flow is passed over once it has no room,
    and gives at most its room: `max_running` less its running executions, counting back the
    ones this statement completes (`done`)."""
    return f"""
    WITH rooms AS (
        SELECT l.flow_id,
               l.most - (SELECT count(*) FROM {{p}}executions r
                         WHERE r.flow_id = l.flow_id AND r.status = 'running')
                      + (SELECT count(*) FROM done WHERE done.flow_id = l.flow_id) AS room
        FROM unnest(%(limit_flows)s::text[], %(limit_counts)s::int[]) AS l (flow_id, most)
    )
    SELECT ranked.id FROM (
        SELECT candidates.*, row_number() OVER (
            PARTITION BY candidates.flow_id
            ORDER BY candidates.priority, candidates.available_at, candidates.id) AS nth
        FROM (
            SELECT e.id, e.flow_id, e.priority, e.available_at FROM {{p}}executions e
            WHERE e.status = 'created' AND e.available_at <= now() {flow_filter}
              AND {_TAKEOVER}
              AND NOT EXISTS (SELECT 1 FROM rooms WHERE rooms.flow_id = e.flow_id
                                                    AND rooms.room <= 0)
            ORDER BY e.priority, e.available_at, e.id
            LIMIT %(most)s
            FOR UPDATE OF e SKIP LOCKED
        ) AS candidates
    ) AS ranked
    LEFT JOIN rooms ON rooms.flow_id = ranked.flow_id
    WHERE rooms.room IS NULL OR ranked.nth <= rooms.room
    ORDER BY ranked.priority, ranked.available_at, ranked.id
    LIMIT %(limit)s + (SELECT count(*) FROM done)
    """


CLAIM_AND_START_LIMITED = _claim(_pick_within_limits(""), _TAKEOVER, start=True)
CLAIM_AND_START_LIMITED_FOR_FLOWS = _claim(
    _pick_within_limits(_FOR_FLOWS), _TAKEOVER, start=True
)

INSERT_SLOT = """
    INSERT INTO {p}schedule_slots (schedule_id, slot_at, execution_id, created_at)
    VALUES (%(schedule_id)s, %(slot_at)s, %(id)s, now())
    ON CONFLICT DO NOTHING
    RETURNING execution_id
"""

LAST_SLOTS = """
    SELECT DISTINCT ON (schedule_id) schedule_id, slot_at, execution_id, created_at
    FROM {p}schedule_slots
    WHERE schedule_id = ANY(%(ids)s)
    ORDER BY schedule_id, slot_at DESC
"""
