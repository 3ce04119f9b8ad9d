"""The event log's half of the `ExecutionStore` contract, once for every SQL backend.

Reads page through one execution's events by index; appends come from a worker's buffer, many
executions in one statement, each fenced by its claim (docs/architecture.md §4). Lifecycle
events are not appended here: the status writes record them (store/lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from flowexec.errors import ValidationError
from flowexec.model import (
    JSON,
    EventBatch,
    ExecutionEvent,
    check_event_types,
    check_fence,
    check_id,
    check_int_range,
    check_limit,
)
from flowexec.store.checkpoints import checked_checkpoints
from flowexec.store.limits import MAX_BATCH
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import Row

DEFAULT_EVENT_PAGE = 1000
MAX_EVENT_INDEX = 2**31 - 1


@runtime_checkable
class EventLog(Protocol):
    """The event log's methods of `ExecutionStore`."""

    async def get_events(
        self,
        execution_id: str,
        from_index: int = 0,
        limit: int = DEFAULT_EVENT_PAGE,
        types: Sequence[str] | None = None,
    ) -> list[ExecutionEvent]:
        """Stored events with `index >= from_index` (of `types`, when given), by index."""
        ...

    async def append_events(self, worker_id: str, batches: Sequence[EventBatch]) -> set[str]:
        """Append run events (`RUN_EVENT_TYPES`) to many executions in one transaction, each
        fenced by its batch's epoch, and record each batch's node checkpoints in the same
        transaction; the ids appended. A refused batch writes nothing. A node id recorded
        before keeps its first result."""
        ...

    async def get_checkpoints(self, execution_id: str) -> dict[str, JSON]:
        """The recorded results of the execution's completed nodes, by node id ({} for an
        unknown id)."""
        ...

    async def wait_for_events(self, execution_id: str, timeout_s: float) -> None:
        """Return when the execution may have new events, or after `timeout_s`."""
        ...


def event_from_row(row: Row) -> ExecutionEvent:
    return ExecutionEvent(
        execution_id=row["execution_id"],
        index=int(row["idx"]),
        type=row["type"],
        at=row["at"],
        attempt=int(row["attempt"]),
        data=row["data"],
    )


def appended_events(batches: Sequence[EventBatch]) -> list[dict[str, Any]]:
    """The batches as statements bind them: one entry per execution, its events as JSON and
    its checkpoints as one JSON object (node id to result)."""
    return [
        {
            "id": b.execution_id,
            "epoch": b.epoch,
            "events": [e.as_json() for e in b.events],
            "checkpoints": {c.node_id: c.as_json() for c in b.checkpoints},
        }
        for b in batches
    ]


def _check_batch(worker_id: str, batch: object) -> EventBatch:
    if not isinstance(batch, EventBatch):
        raise ValidationError(f"append_events takes EventBatch items, not {type(batch).__name__}")
    check_id(batch.execution_id, "execution_id")
    check_fence(worker_id, batch.epoch)
    if not batch.events and not batch.checkpoints:
        raise ValidationError(f"an EventBatch for {batch.execution_id!r} holds nothing")
    return EventBatch(
        batch.execution_id,
        batch.epoch,
        tuple(e.checked() for e in batch.events),
        checked_checkpoints(batch.execution_id, batch.checkpoints),
    )


class EventLogFacade(SqlPrimitives):
    async def get_events(
        self,
        execution_id: str,
        from_index: int = 0,
        limit: int = DEFAULT_EVENT_PAGE,
        types: Sequence[str] | None = None,
    ) -> list[ExecutionEvent]:
        check_id(execution_id, "execution_id")
        check_int_range(from_index, "from_index", 0, MAX_EVENT_INDEX)
        check_limit(limit)
        rows = await self._event_rows(execution_id, from_index, limit, check_event_types(types))
        return [event_from_row(r) for r in rows]

    async def append_events(self, worker_id: str, batches: Sequence[EventBatch]) -> set[str]:
        check_id(worker_id, "worker_id")
        if isinstance(batches, EventBatch) or not isinstance(batches, Sequence):
            raise ValidationError("append_events takes a sequence of EventBatch")
        checked = [_check_batch(worker_id, b) for b in batches]
        if len({b.execution_id for b in checked}) != len(checked):
            raise ValidationError("append_events takes one EventBatch per execution")
        if len(checked) > MAX_BATCH:
            raise ValidationError(f"append_events takes at most {MAX_BATCH} executions at once")
        if not checked:
            return set()
        return await self._append_events(worker_id, checked)
