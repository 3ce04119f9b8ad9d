"""New executions: their ids, and the checks a fresh execution passes before `create`."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flowexec.errors import ValidationError
from flowexec.model.checks import (
    DEFAULT_MAX_DEPTH,
    JSON,
    check_datetime,
    check_id,
    check_int_range,
    check_json,
)
from flowexec.model.records import Execution, ExecutionOptions
from flowexec.model.status import ExecutionStatus, check_status

MIN_PRIORITY = -1_000_000
MAX_PRIORITY = 1_000_000
"""Priorities are integers in this range; lower runs first, the default is 0."""

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
    priority: int | None = None,
    idempotency_key: str | None = None,
    run_at: datetime | None = None,
) -> Execution:
    """A new execution with its root, parent and depth filled in from `parent`; a child
    inherits its parent's priority unless `priority` says otherwise."""
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
        available_at=run_at,
        priority=(parent.priority if parent is not None else 0) if priority is None else priority,
        idempotency_key=idempotency_key,
    )
    check_new_execution(execution, max_depth=max_depth)
    return execution


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
    if e.available_at is not None:
        check_datetime(e.available_at, "run_at")
    check_int_range(e.priority, "priority", MIN_PRIORITY, MAX_PRIORITY)
    if e.idempotency_key is not None:
        check_id(e.idempotency_key, "idempotency_key")
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


def check_child_of(child: Execution, parent: Execution) -> None:
    """A child lives in its parent's tree, one level below it."""
    if parent.root_execution_id != child.root_execution_id:
        raise ValidationError(
            f"parent {parent.id!r} belongs to tree {parent.root_execution_id!r}, "
            f"not to {child.root_execution_id!r}"
        )
    if parent.execution_depth + 1 != child.execution_depth:
        raise ValidationError(
            f"a child of {parent.id!r} (depth {parent.execution_depth}) has depth "
            f"{parent.execution_depth + 1}, not {child.execution_depth}"
        )
