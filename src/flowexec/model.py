"""The data flowexec stores, the lifecycle rules, and the checks on every input.

Backends and the runtime share these definitions so that a rule lives in one place.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from flowexec.errors import ValidationError

JSON = Any
"""A value that survives `json.dumps` / `json.loads` unchanged."""

DEFAULT_TABLE_PREFIX = "flowexec_"
"""The prefix of flowexec's tables when none is given: one installation per prefix."""
MAX_ID_LENGTH = 255
MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000
MAX_LIMIT = 10_000
MAX_TREE_NODES = 1_000_000
DEFAULT_TREE_NODES = 10_000
DEFAULT_MAX_DEPTH = 100
MAX_JSON_BYTES = 1 << 20
MAX_REASON_LENGTH = 4096


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
    """When the queue may hand it out; `None` while it is created but not started."""
    result: JSON = None

    def content_differences(self, other: Execution) -> list[str]:
        """Fields a caller chose that differ; timestamps and progress are not content."""
        names = (
            "flow_id",
            "owner_id",
            "root_execution_id",
            "parent_execution_id",
            "execution_depth",
            "options",
            "integration",
            "external_events",
        )
        return [n for n in names if getattr(self, n) != getattr(other, n)]


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


@dataclass(frozen=True, slots=True)
class StoreStats:
    counts_by_status: dict[str, int] = field(default_factory=dict)
    active_claims: int = 0
    oldest_queued_at: datetime | None = None
    recoveries_last_hour: int = 0


# ---------------------------------------------------------------- ids and time

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def crockford_base32(value: int, length: int) -> str:
    """The lowest `5 * length` bits of `value`, most significant first: sortable as text."""
    chars = []
    for _ in range(length):
        chars.append(CROCKFORD_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str = "EX") -> str:
    """`EX` + 24 characters: 10 of milliseconds (sortable by time), 14 random."""
    millis = time.time_ns() // 1_000_000
    random_part = int.from_bytes(os.urandom(9), "big")
    return prefix + crockford_base32(millis, 10) + crockford_base32(random_part, 14)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_execution(
    flow_id: str,
    owner_id: str,
    *,
    parent: Execution | None = None,
    options: ExecutionOptions | Mapping[str, Any] | None = None,
    integration: Mapping[str, JSON] | None = None,
    external_events: Sequence[Mapping[str, JSON]] | None = None,
    id: str | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Execution:
    """A new execution with its root, parent and depth filled in from `parent`."""
    check_id(flow_id, "flow_id")
    check_id(owner_id, "owner_id")
    execution_id = new_id() if id is None else check_id(id, "id")
    depth = 0 if parent is None else parent.execution_depth + 1
    if depth > max_depth:
        raise ValidationError(
            f"execution depth {depth} exceeds the limit of {max_depth} nested executions"
        )
    now = utcnow()
    execution = Execution(
        id=execution_id,
        flow_id=flow_id,
        owner_id=owner_id,
        root_execution_id=execution_id if parent is None else parent.root_execution_id,
        parent_execution_id=None if parent is None else parent.id,
        status=ExecutionStatus.CREATED,
        created_at=now,
        updated_at=now,
        execution_depth=depth,
        options=ExecutionOptions.parse(options),
        integration=None if integration is None else dict(integration),
        external_events=None if external_events is None else [dict(e) for e in external_events],
    )
    check_new_execution(execution, max_depth=max_depth)
    return execution


# ---------------------------------------------------------------- input checks

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


def check_id(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise ValidationError(f"{name} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(f"{name} is {len(value)} characters; the limit is {MAX_ID_LENGTH}")
    if _CONTROL.search(value) or value != value.strip():
        raise ValidationError(
            f"{name} {value!r} must not contain control characters or surrounding spaces"
        )
    return value


def check_int_range(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """A real number above 0 (or at least 0): durations and intervals in seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{name} must be a number, not {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        wanted = "at least 0" if allow_zero else "positive"
        raise ValidationError(f"{name} must be {wanted}, got {value}")
    return float(value)


def check_timeout_ms(value: object, name: str = "timeout_ms") -> int:
    return check_int_range(value, name, 1, MAX_TIMEOUT_MS)


def check_limit(value: object, name: str = "limit", high: int = MAX_LIMIT) -> int:
    return check_int_range(value, name, 1, high)


def check_status(value: object, name: str = "status") -> ExecutionStatus:
    if isinstance(value, str) and value in ExecutionStatus._value2member_map_:
        return ExecutionStatus(value)
    allowed = ", ".join(s.value for s in ExecutionStatus)
    raise ValidationError(f"{name} {value!r} is not one of: {allowed}")


def check_text(value: object, name: str, *, max_length: int = MAX_REASON_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise ValidationError(f"{name} is {len(value)} characters; the limit is {max_length}")
    return value


def check_optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    return check_text(value, name, max_length=MAX_JSON_BYTES)


def check_datetime(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def check_table_prefix(value: object) -> str:
    if not isinstance(value, str) or not _PREFIX.match(value):
        raise ValidationError(
            f"table_prefix {value!r} must be lower-case letters, digits and underscores, "
            "starting with a letter or underscore, at most 40 characters"
        )
    return value


def check_json(value: object, name: str) -> str:
    """Serialise to canonical JSON text; anything that does not round-trip is rejected."""
    try:
        text = json.dumps(value, allow_nan=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} is not JSON-serialisable: {exc}") from None
    if len(text.encode()) > MAX_JSON_BYTES:
        raise ValidationError(f"{name} is larger than {MAX_JSON_BYTES} bytes of JSON")
    if json.loads(text) != value:
        raise ValidationError(f"{name} does not survive a JSON round trip (tuples, non-str keys?)")
    return text


def check_epoch(value: object) -> int:
    return check_int_range(value, "epoch", 1, (1 << 63) - 1)


def check_fence(worker_id: object, epoch: object) -> tuple[str, int] | None:
    """Fencing takes both a worker id and an epoch, or neither."""
    if worker_id is None and epoch is None:
        return None
    if worker_id is None or epoch is None:
        raise ValidationError("fencing needs both worker_id and epoch, or neither")
    return check_id(worker_id, "worker_id"), check_epoch(epoch)


def check_new_execution(execution: object, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Execution:
    """What `create` accepts: a fresh execution whose tree fields agree with each other."""
    if not isinstance(execution, Execution):
        raise ValidationError(
            f"create takes an Execution (see new_execution), not {type(execution).__name__}"
        )
    e = execution
    check_id(e.id, "id")
    check_id(e.flow_id, "flow_id")
    check_id(e.owner_id, "owner_id")
    check_id(e.root_execution_id, "root_execution_id")
    if check_status(e.status) is not ExecutionStatus.CREATED:
        raise ValidationError(
            f"a new execution starts as 'created', not {e.status.value!r}"
        )
    check_int_range(e.execution_depth, "execution_depth", 0, max_depth)
    if e.parent_execution_id is None:
        if e.root_execution_id != e.id:
            raise ValidationError("a root execution must be its own root_execution_id")
        if e.execution_depth != 0:
            raise ValidationError("a root execution has execution_depth 0")
    else:
        check_id(e.parent_execution_id, "parent_execution_id")
        if e.parent_execution_id == e.id:
            raise ValidationError("an execution cannot be its own parent")
        if e.execution_depth < 1:
            raise ValidationError("a child execution has execution_depth of at least 1")
    check_datetime(e.created_at, "created_at")
    check_datetime(e.updated_at, "updated_at")
    ExecutionOptions.parse(e.options)
    if e.integration is not None:
        if not isinstance(e.integration, dict):
            raise ValidationError("integration must be a dict or None")
        check_json(e.integration, "integration")
    if e.external_events is not None:
        if not isinstance(e.external_events, list) or not all(
            isinstance(ev, dict) for ev in e.external_events
        ):
            raise ValidationError("external_events must be a list of dicts or None")
        check_json(e.external_events, "external_events")
    for name in ("started_at", "completed_at", "processing_started_at", "processing_worker_id",
                 "last_failure_at", "last_failure_reason", "error_message", "error_node_id"):
        if getattr(e, name) is not None:
            raise ValidationError(f"a new execution has no {name}")
    if e.failure_count != 0:
        raise ValidationError("a new execution has failure_count 0")
    if e.result is not None:
        raise ValidationError("a new execution has no result")
    return e
