"""The lifecycle: an execution's statuses, the moves between them, and the claim statuses."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from flowexec.errors import ValidationError


class ExecutionStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.STOPPED}
)

# docs/architecture.md §3, plus what an operator needs: a paused run can be stopped, and recovery
# can requeue or fail a paused run whose worker died. `running -> running` is how
# a new lease holder takes over a run.
ALLOWED_TRANSITIONS: Mapping[ExecutionStatus, frozenset[ExecutionStatus]] = {
    ExecutionStatus.CREATED: frozenset(
        {ExecutionStatus.RUNNING, ExecutionStatus.STOPPED, ExecutionStatus.FAILED}
    ),
    ExecutionStatus.RUNNING: frozenset(
        {
            ExecutionStatus.RUNNING,
            ExecutionStatus.PAUSED,
            ExecutionStatus.CREATED,
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
            ExecutionStatus.STOPPED,
        }
    ),
    ExecutionStatus.PAUSED: frozenset(
        {
            ExecutionStatus.RUNNING,
            ExecutionStatus.CREATED,
            ExecutionStatus.FAILED,
            ExecutionStatus.STOPPED,
        }
    ),
    ExecutionStatus.COMPLETED: frozenset(),
    ExecutionStatus.FAILED: frozenset(),
    ExecutionStatus.STOPPED: frozenset(),
}


def sources_of(target: ExecutionStatus) -> list[str]:
    """The statuses from which `target` may be entered, for use in SQL filters."""
    return sorted(s.value for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def can_transition(current: ExecutionStatus, target: ExecutionStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


class ClaimStatus(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"


class RecoveryReason(StrEnum):
    """Why recovery acted; free text is allowed in `record_recovery`, these are flowexec's own."""

    EXPIRED_CLAIM = "expired_claim"
    RELEASED_WHILE_RUNNING = "released_while_running"
    MISSING_CLAIM = "missing_claim"
    MAX_FAILURES_EXCEEDED = "max_failures_exceeded"


def check_status(value: object, name: str = "status") -> ExecutionStatus:
    if isinstance(value, str) and value in ExecutionStatus._value2member_map_:
        return ExecutionStatus(value)
    allowed = ", ".join(s.value for s in ExecutionStatus)
    raise ValidationError(f"{name} {value!r} is not one of: {allowed}")
