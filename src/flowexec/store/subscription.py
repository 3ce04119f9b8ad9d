"""Following one execution's event log: stored events first, then live ones, each once.

The index is the truth. A subscriber keeps only the next index it wants and one page; it reads
pages by index, and when it has caught up it waits for a wake-up (NOTIFY on PostgreSQL, polling
on SQLite) or its re-read timeout, whichever comes first, then reads again. A lost wake-up
therefore costs at most `recheck_s`, never an event (docs/architecture.md §5).

The end: the status is read before each page, so once it is terminal the page after it holds
everything, since the terminal event commits with the terminal status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from flowexec.errors import ExecutionNotFound
from flowexec.model import TERMINAL_STATUSES, ExecutionEvent, check_positive
from flowexec.store.event_log import DEFAULT_EVENT_PAGE
from flowexec.store.protocol import ExecutionStore

RECHECK_S = 1.0
"""How long a caught-up subscriber waits for a wake-up before it reads again anyway."""


async def follow_events(
    store: ExecutionStore,
    execution_id: str,
    *,
    from_index: int = 0,
    types: Sequence[str] | None = None,
    follow: bool = True,
    page_size: int = DEFAULT_EVENT_PAGE,
    recheck_s: float = RECHECK_S,
) -> AsyncIterator[ExecutionEvent]:
    """Every event with `index >= from_index` (of `types`, when given) exactly once, in order.

    With `follow`, live events follow the stored ones until the execution is terminal and its
    last event was delivered; without, it ends at the last stored event.
    """
    check_positive(recheck_s, "recheck_s")
    next_index = from_index
    first = True
    while True:
        status = None
        if follow:
            status = (await store.get_statuses([execution_id])).get(execution_id)
            if status is None and first:
                raise ExecutionNotFound(execution_id)
        first = False
        page = await store.get_events(execution_id, next_index, page_size, types)
        for event in page:
            yield event
        if page:
            next_index = page[-1].index + 1
            if page[-1].is_terminal:
                return
        if len(page) == page_size:
            continue
        if not follow or status is None or status in TERMINAL_STATUSES:
            return  # caught up, and the status read before this page says nothing follows
        await store.wait_for_events(execution_id, recheck_s)
