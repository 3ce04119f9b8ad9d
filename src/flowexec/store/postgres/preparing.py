"""Which statements the PostgreSQL store prepares on the server, and when.

psycopg prepares a statement after five unprepared runs on a connection. The statements a
Worker runs for every batch or heartbeat are prepared on their first run instead; PostgreSQL
then plans them five times with their values and afterwards keeps one generic plan, which
stays on its indexes (tests/store/postgres/test_plans.py). Behind a pooler that cannot keep
prepared statements (PgBouncer in transaction mode) nothing is prepared at all.
"""

from __future__ import annotations

from flowexec.store.commands import statements_by_effect
from flowexec.store.postgres import queries as Q
from flowexec.store.postgres.worker_queries import KEEP_ALIVE

HOT = frozenset({
    Q.CLAIM_AND_START, Q.CLAIM_AND_START_FOR_FLOWS, Q.EXTEND, KEEP_ALIVE, Q.APPEND_EVENTS,
    Q.STATUSES, *statements_by_effect(Q).values(),
})


def prepare_mode(enabled: bool, template: str) -> bool | None:
    """psycopg's `prepare` argument: at once for a hot statement, after psycopg's threshold
    for the rest, never when preparing is off."""
    if not enabled:
        return False
    return True if template in HOT else None
