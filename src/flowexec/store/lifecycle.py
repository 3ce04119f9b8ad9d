"""Which status change writes which event, decided once for both backends (docs/architecture.md §3).

A lifecycle event commits with the status change it describes. The backend cannot know every
detail in advance (which status a write leaves, whether a retry gives up), so each rule here
returns the possible events keyed by that status, and the backend's statement picks the one
that applies: PostgreSQL in SQL (`jsonb -> status`), SQLite in its transaction.
"""

from __future__ import annotations

from flowexec.model import JSON, EventType, ExecutionStatus
from flowexec.policy import RecoveryOutcome

EventSpec = dict[str, JSON]
"""`{"type": ..., "data": {...}}`, the form statements bind."""


def event_spec(type: EventType, data: dict[str, JSON] | None = None) -> EventSpec:
    return {"type": type.value, "data": data or {}}


def entering(target: ExecutionStatus, source: ExecutionStatus) -> EventType:
    """The event of moving from `source` to `target` by a status write."""
    if target is ExecutionStatus.RUNNING and source is ExecutionStatus.PAUSED:
        return EventType.FLOW_RESUMED
    return {
        ExecutionStatus.RUNNING: EventType.FLOW_STARTED,
        ExecutionStatus.PAUSED: EventType.FLOW_PAUSED,
        ExecutionStatus.CREATED: EventType.FLOW_REQUEUED,
        ExecutionStatus.COMPLETED: EventType.FLOW_COMPLETED,
        ExecutionStatus.FAILED: EventType.FLOW_FAILED,
        ExecutionStatus.STOPPED: EventType.FLOW_STOPPED,
    }[target]


def status_write_events(
    target: ExecutionStatus,
    sources: list[str],
    *,
    error_message: str | None,
    error_node_id: str | None,
    extra: dict[str, JSON] | None,
) -> dict[str, EventSpec]:
    """The event of a status write, keyed by the status it leaves."""
    data: dict[str, JSON] = {}
    if error_message is not None:
        data["message"] = error_message
    if error_node_id is not None:
        data["node_id"] = error_node_id
    data.update(extra or {})
    return {s: event_spec(entering(target, ExecutionStatus(s)), data) for s in sources}


def started_event(worker_id: str) -> EventSpec:
    """`claim_and_start` moving a queued execution to `running`."""
    return event_spec(EventType.FLOW_STARTED, {"worker_id": worker_id})


def completed_event() -> EventSpec:
    """A completion written by `claim_and_start`."""
    return event_spec(EventType.FLOW_COMPLETED)


def retry_events(
    *,
    reason: str,
    delay_ms: int,
    count_failure: bool,
    extra: dict[str, JSON] | None,
    suspend: bool = False,
) -> dict[str, EventSpec]:
    """The event of `retry_execution`, keyed by the status it enters (`failed` once the
    failures are spent). A suspension (a durable sleep or wait, §11) is not a retry: it logs
    `flow:suspended` and never counts a failure."""
    data: dict[str, JSON] = {"message": reason, **(extra or {})}
    queued = (
        event_spec(EventType.FLOW_SUSPENDED, {**data, "delay_ms": delay_ms})
        if suspend
        else event_spec(
            EventType.FLOW_RETRYING,
            {**data, "delay_ms": delay_ms, "failure_counted": count_failure},
        )
    )
    return {
        ExecutionStatus.CREATED.value: queued,
        ExecutionStatus.FAILED.value: event_spec(EventType.FLOW_FAILED, data),
    }


def recovery_events(outcome: RecoveryOutcome, reason: str) -> list[EventSpec]:
    """A recovered execution's events: recovered, and failed when recovery gives up."""
    recovered = event_spec(
        EventType.EXECUTION_RECOVERED,
        {"reason": reason, "backoff_ms": outcome.backoff_ms, "status": outcome.status.value},
    )
    if outcome.status is ExecutionStatus.FAILED:
        failed = event_spec(EventType.FLOW_FAILED, {"message": outcome.error_message})
        return [recovered, failed]
    return [recovered]
