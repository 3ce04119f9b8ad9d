"""Where a root listing resumes, as a keyset position."""

from __future__ import annotations

from datetime import UTC, datetime

from flowexec.errors import ValidationError
from flowexec.model import RootExecution, check_datetime, check_id

PagePosition = datetime | RootExecution | tuple[datetime, str]
"""Where a root listing resumes: a datetime (as the TypeScript PostgresExecutionStore takes),
a row returned earlier, or the (created_at, id) pair of one (what a serialised cursor carries)."""


def page_cursor(after: PagePosition | None) -> tuple[datetime, str] | None:
    """Keyset position: rows strictly before (created_at, id), newest first.

    A bare datetime means "created before it": the empty id sorts before every real id, so
    (t, "") excludes every row created at exactly t.
    """
    if after is None:
        return None
    if isinstance(after, RootExecution):
        return after.execution.created_at.astimezone(UTC), after.execution.id
    if isinstance(after, datetime):
        return check_datetime(after, "after"), ""
    if isinstance(after, tuple) and len(after) == 2:
        return check_datetime(after[0], "after[0]"), check_id(after[1], "after[1]")
    raise ValidationError(
        "after must be a datetime, a RootExecution, a (created_at, id) pair or None, "
        f"not {type(after).__name__}"
    )
