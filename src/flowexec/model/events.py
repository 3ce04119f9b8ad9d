"""The event log's records: what happened inside an execution, in order (docs/architecture.md §2).

Every execution has a log of events indexed 0, 1, 2, ... without gaps. Lifecycle events are
written by the status change they describe (store/lifecycle.py decides which); a run appends
the others (`RUN_EVENT_TYPES`) through its worker, fenced by its claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from flowexec.errors import ValidationError
from flowexec.model.checks import JSON, check_json, check_text
from flowexec.model.steps import NodeCheckpoint

MAX_TRACEBACK_CHARS = 16_000
"""A failure event keeps the innermost part of a traceback up to this size."""


class EventType(StrEnum):
    FLOW_STARTED = "flow:started"
    FLOW_COMPLETED = "flow:completed"
    FLOW_FAILED = "flow:failed"
    FLOW_RETRYING = "flow:retrying"
    FLOW_STOPPED = "flow:stopped"
    FLOW_PAUSED = "flow:paused"
    FLOW_RESUMED = "flow:resumed"
    FLOW_REQUEUED = "flow:requeued"
    FLOW_SUSPENDED = "flow:suspended"
    NODE_STARTED = "node:started"
    NODE_COMPLETED = "node:completed"
    NODE_FAILED = "node:failed"
    NODE_REPLAYED = "node:replayed"
    CHILD_SPAWNED = "child:spawned"
    BREAKPOINT_HIT = "breakpoint:hit"
    EXECUTION_RECOVERED = "execution:recovered"
    LOG = "log"


TERMINAL_EVENT_TYPES = frozenset(
    {EventType.FLOW_COMPLETED, EventType.FLOW_FAILED, EventType.FLOW_STOPPED}
)
"""Written only with the terminal status of the same name: nothing follows them."""

RUN_EVENT_TYPES = frozenset(
    {
        EventType.NODE_STARTED,
        EventType.NODE_COMPLETED,
        EventType.NODE_FAILED,
        EventType.NODE_REPLAYED,
        EventType.CHILD_SPAWNED,
        EventType.BREAKPOINT_HIT,
        EventType.LOG,
    }
)
"""What a run may append itself; the others come with status changes."""


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    """One stored event. `attempt` is the claim epoch of the writer (0 without a claim)."""

    execution_id: str
    index: int
    type: str
    at: datetime
    attempt: int
    data: dict[str, JSON] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENT_TYPES

    def to_json(self) -> dict[str, JSON]:
        return {
            "execution_id": self.execution_id,
            "index": self.index,
            "type": self.type,
            "at": self.at.isoformat(),
            "attempt": self.attempt,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event a run appends: one of `RUN_EVENT_TYPES` with a JSON object of data."""

    type: str
    data: dict[str, JSON] = field(default_factory=dict)

    def checked(self) -> NewEvent:
        if self.type not in RUN_EVENT_TYPES:
            allowed = ", ".join(sorted(RUN_EVENT_TYPES))
            raise ValidationError(f"a run appends only {allowed}; not {self.type!r:.60}")
        check_event_data(self.data)
        return self

    def as_json(self) -> dict[str, JSON]:
        return {"type": str(self.type), "data": self.data}


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events a worker appends to one execution it holds, fenced by the claim's epoch, and
    the node results it records with them (in the same transaction)."""

    execution_id: str
    epoch: int
    events: tuple[NewEvent, ...]
    checkpoints: tuple[NodeCheckpoint, ...] = ()


def check_event_data(data: object, name: str = "event data") -> dict[str, JSON]:
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValidationError(f"{name} must be a JSON object, not {type(data).__name__}")
    check_json(data, name)
    return data


def check_event_types(types: object) -> list[str] | None:
    """A `types` filter: None (every type) or a non-empty list of type names."""
    if types is None:
        return None
    if isinstance(types, str) or not isinstance(types, list | tuple | set | frozenset):
        raise ValidationError("types must be a list of event types")
    checked = [check_text(t, "event type") for t in types]
    if not checked:
        raise ValidationError("types must name at least one event type, or be None")
    return sorted(set(checked))


def trimmed_traceback(text: str) -> str:
    """The innermost `MAX_TRACEBACK_CHARS` of a formatted traceback: the raising frames and
    the exception line are at the end."""
    if len(text) <= MAX_TRACEBACK_CHARS:
        return text
    return "... (outer frames trimmed)\n" + text[-MAX_TRACEBACK_CHARS:]
