"""What each page shows, read from the store through the API's owner rules (`Principal`).

The overview's counts by status come from `CountsCache` (counts.py); its live figures (queue,
throughput, recoveries, workers, claims) are read on every view through the queue's, the
retention's, the recoveries' and the claims' indexes. Store-wide figures are for admins only.
"""

from __future__ import annotations

from typing import Any

from flowexec.api.auth import Principal
from flowexec.api.cursors import decode_cursor, encode_cursor
from flowexec.api.settings import MAX_PAGE
from flowexec.dashboard.counts import CountsCache
from flowexec.model import EventType, ExecutionStatus
from flowexec.runtime.client import Client
from flowexec.store.protocol import ExecutionStore

THROUGHPUT_WINDOW_S = 300
"""The overview's throughput: roots finished in this many seconds."""
TREE_NODES = 500
"""Most nodes an execution page draws; the API's tree endpoint pages further."""
EVENTS_ON_PAGE = MAX_PAGE
"""Events rendered with the page; the live stream continues after them."""
SHOWN_CLAIMS = 50
FAILURE_TYPES = (EventType.FLOW_FAILED, EventType.FLOW_RETRYING, EventType.NODE_FAILED)
ACTIONS: dict[str, frozenset[ExecutionStatus]] = {
    "stop": frozenset({ExecutionStatus.CREATED, ExecutionStatus.RUNNING, ExecutionStatus.PAUSED}),
    "pause": frozenset({ExecutionStatus.RUNNING}),
    "resume": frozenset({ExecutionStatus.PAUSED}),
    "retry": frozenset({ExecutionStatus.RUNNING, ExecutionStatus.PAUSED}),
}
"""Each action, and the statuses its button shows in (the store decides in the end). Retry
ends the current attempt and requeues it (`Client.retry`); a finished execution stays
finished."""


async def overview(store: ExecutionStore, cache: CountsCache, who: Principal) -> dict[str, Any]:
    counts = await cache.get(store, who.owner_filter)
    context: dict[str, Any] = {
        "statuses": list(ExecutionStatus),
        "flows": sorted(counts.items()),
        "admin": who.admin,
    }
    if not who.admin:
        return context
    queues = {q.flow_id: q for q in await store.get_queue_stats()}
    finished = await store.get_finished_counts(THROUGHPUT_WINDOW_S)
    flow_ids = sorted(set(counts) | set(queues) | set(finished))
    claims = await store.get_active_claims()
    context.update(
        flows=[(f, counts.get(f, {})) for f in flow_ids],
        queues=queues,
        finished=finished,
        window_min=THROUGHPUT_WINDOW_S // 60,
        workers=await store.get_workers(),
        claims=claims[:SHOWN_CLAIMS],
        claim_count=len(claims),
        oldest_queued_at=min(
            (q.oldest_queued_at for q in queues.values() if q.oldest_queued_at), default=None
        ),
        recoveries=await store.count_recoveries(3600),
        now=await store.now(),
    )
    return context


async def flow_page(
    store: ExecutionStore,
    who: Principal,
    flow_id: str,
    *,
    status: ExecutionStatus | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    roots = await store.get_root_executions(
        flow_id,
        limit,
        decode_cursor(cursor),
        owner_id=who.owner_filter,
        status=status,
    )
    return {
        "flow_id": flow_id,
        "roots": roots,
        "status": status,
        "statuses": list(ExecutionStatus),
        "limit": limit,
        "first_page": cursor is None,
        "next_cursor": encode_cursor(roots[-1]) if len(roots) == limit else None,
    }


async def execution_page(
    store: ExecutionStore, client: Client, who: Principal, execution_id: str
) -> dict[str, Any]:
    """Raises `ExecutionNotFound` for another owner's execution, as for a missing one."""
    execution = who.visible(await store.get(execution_id), execution_id)
    nodes = [
        n for n in await client.tree(execution_id, max_nodes=TREE_NODES)
        if who.may_see(n.execution)
    ]
    events = await store.get_events(execution_id, 0, EVENTS_ON_PAGE)
    failures = await store.get_events(execution_id, 0, MAX_PAGE, list(FAILURE_TYPES))
    traceback = next(
        (e for e in reversed(failures) if isinstance(e.data.get("traceback"), str)), None
    )
    return {
        "execution": execution,
        "nodes": nodes,
        "tree_capped": len(nodes) >= TREE_NODES,
        "events": events,
        "next_index": events[-1].index + 1 if events else 0,
        "traceback": traceback,
        "claim": await store.get_claim_for_execution(execution_id),
        "recoveries": await store.get_recovery_history(execution_id),
        "actions": ACTIONS,
        "options": None if execution.options is None else execution.options.to_json(),
    }
