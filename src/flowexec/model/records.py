"""The records flowexec stores and returns: executions, their options, claims and history."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowexec.errors import ExecutionNotCompleted, ValidationError
from flowexec.model.checks import JSON, check_int_range, check_timeout_ms, json_normal_form
from flowexec.model.status import ClaimStatus, ExecutionStatus


@dataclass(frozen=True, slots=True)
class ExecutionLimits:
    flow_timeout_ms: int | None = None
    max_concurrency: int | None = None
    node_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ExecutionOptions:
    breakpoints: list[str] | None = None
    debug: bool | None = None
    execution: ExecutionLimits | None = None

    def to_json(self) -> dict[str, JSON]:
        """The stored JSON shape (snake_case keys): only the keys that are set."""
        out: dict[str, JSON] = {}
        if self.breakpoints is not None:
            out["breakpoints"] = list(self.breakpoints)
        if self.debug is not None:
            out["debug"] = self.debug
        if self.execution is not None:
            limits = {
                k: v for k, v in dataclasses.asdict(self.execution).items() if v is not None
            }
            out["execution"] = limits
        return out

    @classmethod
    def parse(cls, value: ExecutionOptions | Mapping[str, Any] | None) -> ExecutionOptions | None:
        """Accept the model or a plain dict of the same shape; reject anything else."""
        if value is None or isinstance(value, ExecutionOptions):
            if value is not None:
                _check_options(value)
            return value
        if not isinstance(value, Mapping):
            raise ValidationError(
                f"options must be an ExecutionOptions or a dict, not {type(value).__name__}"
            )
        unknown = set(value) - {"breakpoints", "debug", "execution"}
        if unknown:
            raise ValidationError(f"options has unknown keys: {sorted(unknown)}")
        limits_value = value.get("execution")
        limits: ExecutionLimits | None = None
        if limits_value is not None:
            if isinstance(limits_value, ExecutionLimits):
                limits = limits_value
            elif isinstance(limits_value, Mapping):
                bad = set(limits_value) - {"flow_timeout_ms", "max_concurrency", "node_timeout_ms"}
                if bad:
                    raise ValidationError(f"options.execution has unknown keys: {sorted(bad)}")
                limits = ExecutionLimits(**dict(limits_value))
            else:
                raise ValidationError("options.execution must be a dict")
        options = cls(
            breakpoints=value.get("breakpoints"),
            debug=value.get("debug"),
            execution=limits,
        )
        _check_options(options)
        return options


def _check_options(options: ExecutionOptions) -> None:
    if options.breakpoints is not None and (
        not isinstance(options.breakpoints, list)
        or not all(isinstance(b, str) and b for b in options.breakpoints)
    ):
        raise ValidationError("options.breakpoints must be a list of non-empty node ids")
    if options.debug is not None and not isinstance(options.debug, bool):
        raise ValidationError("options.debug must be true or false")
    limits = options.execution
    if limits is not None:
        if not isinstance(limits, ExecutionLimits):
            raise ValidationError("options.execution must be an ExecutionLimits or a dict")
        for name in ("flow_timeout_ms", "node_timeout_ms"):
            v = getattr(limits, name)
            if v is not None:
                check_timeout_ms(v, f"options.execution.{name}")
        if limits.max_concurrency is not None:
            check_int_range(limits.max_concurrency, "options.execution.max_concurrency", 1, 10_000)


@dataclass(frozen=True, slots=True)
class Execution:
    id: str
    flow_id: str
    owner_id: str
    root_execution_id: str
    parent_execution_id: str | None
    status: ExecutionStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None
    error_node_id: str | None = None
    execution_depth: int = 0
    options: ExecutionOptions | None = None
    integration: dict[str, JSON] | None = None
    external_events: list[dict[str, JSON]] | None = None
    failure_count: int = 0
    last_failure_reason: str | None = None
    last_failure_at: datetime | None = None
    processing_started_at: datetime | None = None
    processing_worker_id: str | None = None
    available_at: datetime | None = None
    """When the queue may hand it out; `None` while it is created but not started. On a new
    execution: the earliest time it may run (its delayed start), or `None` for at once."""
    result: JSON = None
    priority: int = 0
    """Lower runs first; executions of one priority run oldest first."""
    idempotency_key: str | None = None
    """Unique per flow while the execution exists: a second create with it finds this one."""

    def completed_result(self) -> JSON:
        """The result, which only a completed execution has: `ExecutionNotCompleted` otherwise
        (the same answer from the database `Client` and the `HttpClient`)."""
        if self.status is not ExecutionStatus.COMPLETED:
            raise ExecutionNotCompleted(
                self.id, self.status.value, self.error_message, self.error_node_id
            )
        return self.result

    def content_differences(self, other: Execution) -> list[str]:
        """Fields a caller chose that differ; timestamps and progress are not content. JSON is
        compared in its normal form, so the database's way of writing a number is no difference.
        """
        names = (
            "flow_id",
            "owner_id",
            "root_execution_id",
            "parent_execution_id",
            "execution_depth",
            "options",
            "priority",
            "idempotency_key",
        )
        differences = [n for n in names if getattr(self, n) != getattr(other, n)]
        differences += [
            n
            for n in ("integration", "external_events")
            if json_normal_form(_content_of(n, getattr(self, n)))
            != json_normal_form(_content_of(n, getattr(other, n)))
        ]
        return differences


TRACE_CONTEXT_KEY = "traceparent"
"""The key of a spawning event that carries the emitting run's W3C trace context. It says which
attempt created the child, not what the child is, so content comparisons leave it out."""


def _content_of(name: str, value: Any) -> Any:
    if name != "external_events" or not isinstance(value, list):
        return value
    return [
        {k: v for k, v in event.items() if k != TRACE_CONTEXT_KEY}
        if isinstance(event, dict) else event
        for event in value
    ]


@dataclass(frozen=True, slots=True)
class ExecutionClaim:
    execution_id: str
    worker_id: str
    claimed_at: datetime
    expires_at: datetime
    heartbeat_at: datetime
    status: ClaimStatus
    epoch: int


@dataclass(frozen=True, slots=True)
class StartedExecution:
    """An execution that `claim_and_start` claimed and moved to `running`, with its claim."""

    claim: ExecutionClaim
    execution: Execution


@dataclass(frozen=True, slots=True)
class Completion:
    """A run that returned `result`: completed by `claim_and_start`, fenced by the run's epoch."""

    execution_id: str
    epoch: int
    result: JSON = None


@dataclass(frozen=True, slots=True)
class WorkBatch:
    """What one `claim_and_start` did: the executions it started (in no particular order), and
    the ids it completed."""

    started: list[StartedExecution]
    completed: frozenset[str]


@dataclass(frozen=True, slots=True)
class ExecutionTreeNode:
    id: str
    parent_id: str | None
    level: int
    execution: Execution


@dataclass(frozen=True, slots=True)
class RootExecution:
    execution: Execution
    levels: int
    total_nested: int


@dataclass(frozen=True, slots=True)
class RecoveryRecord:
    id: int
    execution_id: str
    recovered_at: datetime
    recovered_by_worker: str
    recovery_reason: str
    previous_status: str | None
    previous_worker_id: str | None


@dataclass(frozen=True, slots=True)
class UpdateExecutionStatusParams:
    """The TypeScript PostgresExecutionStore's fields, plus fencing (`worker_id` + `epoch`),
    the run's result and an optional expected current status."""

    execution_id: str
    status: ExecutionStatus
    error_message: str | None = None
    error_node_id: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    worker_id: str | None = None
    epoch: int | None = None
    result: JSON = None
    expected_status: ExecutionStatus | None = None
    """Compare-and-set: apply only while the execution is in this status (e.g. resume only a
    paused one); otherwise `InvalidTransition`."""
    event_data: dict[str, JSON] | None = None
    """More fields for the lifecycle event this write records, e.g. a failure's exception
    type and traceback."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    counts_by_status: dict[str, int] = field(default_factory=dict)
    active_claims: int = 0
    oldest_queued_at: datetime | None = None
    recoveries_last_hour: int = 0


@dataclass(frozen=True, slots=True)
class FlowQueueStats:
    """One flow's unfinished work, read at `measured_at` on the database clock.

    `queued` executions are runnable now; `delayed` ones wait for a retry or recovery backoff
    (or are held by a `claim_next` claimer that has not started them yet).
    """

    flow_id: str
    queued: int
    delayed: int
    running: int
    paused: int
    oldest_queued_at: datetime | None
    measured_at: datetime

    @property
    def oldest_queued_age_s(self) -> float:
        """How long the oldest runnable execution has waited (0 with none queued)."""
        if self.oldest_queued_at is None:
            return 0.0
        return max((self.measured_at - self.oldest_queued_at).total_seconds(), 0.0)


@dataclass(frozen=True, slots=True)
class ScheduleSlot:
    """A cron slot a scheduler filled: the execution created for it, once per slot."""

    schedule_id: str
    slot_at: datetime
    execution_id: str
    created_at: datetime
