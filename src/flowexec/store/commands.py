"""Checked writes and queries, ready for a backend to run, and the parameters they bind.

The facade builds these from caller input; a backend only picks its statement and binds
`params(...)`, so both backends agree on every parameter name. Times and lists go through the
backend's `ParamEncoding` (PostgreSQL binds them natively; SQLite as microseconds and JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from flowexec.model import ExecutionStatus
from flowexec.store.lifecycle import EventSpec, completed_event

Params = dict[str, Any]
Fence = tuple[str, int]


class ParamEncoding(Protocol):
    def time(self, value: datetime) -> object: ...

    def array(self, values: list[Any]) -> object: ...


class StatusEffect(Enum):
    """What entering a status does besides setting it (docs/architecture.md §3)."""

    RUN = "run"  # started_at set once, never reset
    PAUSE = "pause"
    FINISH = "finish"  # completed_at set, claim released, processing fields cleared
    REQUEUE = "requeue"  # completed_at and processing fields cleared, claim released, runnable now

    @classmethod
    def of(cls, status: ExecutionStatus) -> StatusEffect:
        if status.is_terminal:
            return cls.FINISH
        return {
            ExecutionStatus.RUNNING: cls.RUN,
            ExecutionStatus.PAUSED: cls.PAUSE,
            ExecutionStatus.CREATED: cls.REQUEUE,
        }[status]


class StatusStatements(Protocol):
    """A backend's statements module, as far as status writes go."""

    STATUS_RUN: str
    STATUS_PAUSE: str
    STATUS_FINISH: str
    STATUS_REQUEUE: str


def statements_by_effect(queries: StatusStatements) -> dict[StatusEffect, str]:
    return {
        StatusEffect.RUN: queries.STATUS_RUN,
        StatusEffect.PAUSE: queries.STATUS_PAUSE,
        StatusEffect.FINISH: queries.STATUS_FINISH,
        StatusEffect.REQUEUE: queries.STATUS_REQUEUE,
    }


def fence_params(fence: Fence | None) -> Params:
    return {
        "fence_worker": None if fence is None else fence[0],
        "fence_epoch": None if fence is None else fence[1],
    }


def events_json(events: dict[str, EventSpec] | list[EventSpec]) -> str:
    """Lifecycle events as statements bind them: JSON text."""
    return json.dumps(events, separators=(",", ":"))


def optional_time(encoding: ParamEncoding, value: datetime | None) -> object:
    return None if value is None else encoding.time(value)


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """A checked `update_execution_status`."""

    execution_id: str
    status: ExecutionStatus
    effect: StatusEffect
    sources: list[str]
    fence: Fence | None
    error_message: str | None
    error_node_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    result_json: str | None
    events: dict[str, EventSpec]
    """The lifecycle event, keyed by the status the write leaves (store/lifecycle.py)."""

    @property
    def attempt(self) -> int:
        """The writer's claim epoch, 0 for a write without a claim."""
        return 0 if self.fence is None else self.fence[1]

    def params(self, encoding: ParamEncoding) -> Params:
        return {
            "id": self.execution_id,
            "status": self.status.value,
            "sources": encoding.array(self.sources),
            **fence_params(self.fence),
            "error_message": self.error_message,
            "error_node_id": self.error_node_id,
            "started_at": optional_time(encoding, self.started_at),
            "completed_at": optional_time(encoding, self.completed_at),
            "result": self.result_json,
            "events": events_json(self.events),
            "attempt": self.attempt,
        }


@dataclass(frozen=True, slots=True)
class CompletionWrite:
    """A checked `Completion`: fenced by the claiming worker and this epoch."""

    execution_id: str
    epoch: int
    result_json: str | None

    def as_status_write(self, worker_id: str) -> StatusWrite:
        """The same write as `update_execution_status(COMPLETED)`, fenced, from `running`."""
        return StatusWrite(
            execution_id=self.execution_id,
            status=ExecutionStatus.COMPLETED,
            effect=StatusEffect.FINISH,
            sources=[ExecutionStatus.RUNNING.value],
            fence=(worker_id, self.epoch),
            error_message=None,
            error_node_id=None,
            started_at=None,
            completed_at=None,
            result_json=self.result_json,
            events={ExecutionStatus.RUNNING.value: completed_event()},
        )


@dataclass(frozen=True, slots=True)
class ClaimAndStart:
    """A checked `claim_and_start`: write the completions, then claim and start at most
    `limit` plus as many as were written."""

    worker_id: str
    timeout_ms: int
    limit: int
    flow_ids: list[str] | None
    completions: list[CompletionWrite]
    running_limits: dict[str, int]
    """`max_running` of the flows that have one: the claim starts no more than that."""


@dataclass(frozen=True, slots=True)
class RetryWrite:
    """A checked `retry_execution`."""

    execution_id: str
    worker_id: str
    epoch: int
    reason: str
    delay_ms: int
    count_failure: bool
    max_failures: int | None
    error_node_id: str | None
    events: dict[str, EventSpec]
    """The lifecycle event, keyed by the status the retry enters (store/lifecycle.py)."""

    def params(self) -> Params:
        return {
            "id": self.execution_id,
            "worker_id": self.worker_id,
            "epoch": self.epoch,
            "reason": self.reason,
            "delay_ms": self.delay_ms,
            "increment": 1 if self.count_failure else 0,
            "max_failures": self.max_failures,
            "error_node_id": self.error_node_id,
            "events": events_json(self.events),
        }


@dataclass(frozen=True, slots=True)
class RecoveryRecordWrite:
    """A checked `record_recovery`."""

    execution_id: str
    worker_id: str
    reason: str
    previous_status: str | None
    previous_worker_id: str | None

    def params(self) -> Params:
        return {
            "id": self.execution_id,
            "worker_id": self.worker_id,
            "reason": self.reason,
            "previous_status": self.previous_status,
            "previous_worker_id": self.previous_worker_id,
        }


@dataclass(frozen=True, slots=True)
class RootPageQuery:
    """A checked `get_root_executions`: one keyset page of a flow's roots, newest first."""

    flow_id: str
    limit: int
    cursor: tuple[datetime, str] | None
    owner_id: str | None
    status: ExecutionStatus | None = None

    @property
    def variant(self) -> tuple[bool, bool, bool]:
        """Which `ROOT_PAGE` statement: (has cursor, has owner filter, has status filter)."""
        return self.cursor is not None, self.owner_id is not None, self.status is not None

    def params(self, encoding: ParamEncoding) -> Params:
        return {
            "flow_id": self.flow_id,
            "limit": self.limit,
            "after_created": None if self.cursor is None else encoding.time(self.cursor[0]),
            "after_id": None if self.cursor is None else self.cursor[1],
            "owner_id": self.owner_id,
            "status": None if self.status is None else self.status.value,
        }


@dataclass(frozen=True, slots=True)
class StatusPageQuery:
    """A checked `get_roots_in_status`: one page of roots in `status`."""

    status: str
    flow_id: str | None
    limit: int
    cursor: tuple[datetime, str] | None

    @property
    def variant(self) -> tuple[bool, bool]:
        """Which `ROOTS_IN_STATUS` statement: (has cursor, has flow filter)."""
        return self.cursor is not None, self.flow_id is not None

    def params(self, encoding: ParamEncoding) -> Params:
        return {
            "status": self.status,
            "flow_id": self.flow_id,
            "limit": self.limit,
            "after_created": None if self.cursor is None else encoding.time(self.cursor[0]),
            "after_id": None if self.cursor is None else self.cursor[1],
        }
