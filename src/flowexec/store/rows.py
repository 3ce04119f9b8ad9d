"""Rows as both backends return them, turned into the model's objects, and back."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flowexec.model import (
    ClaimStatus,
    Execution,
    ExecutionClaim,
    ExecutionOptions,
    ExecutionStatus,
    ExecutionTreeNode,
    RecoveryRecord,
    RootExecution,
    StartedExecution,
    StoreStats,
    check_json,
)
from flowexec.store.commands import Fence

Row = dict[str, Any]
"""A row with canonical Python values: aware UTC datetimes, decoded JSON."""


def claim_from_row(row: Row) -> ExecutionClaim:
    return ExecutionClaim(
        execution_id=row["execution_id"],
        worker_id=row["worker_id"],
        claimed_at=row["claimed_at"],
        expires_at=row["expires_at"],
        heartbeat_at=row["heartbeat_at"],
        status=ClaimStatus(row["status"]),
        epoch=int(row["epoch"]),
    )


def recovery_from_row(row: Row) -> RecoveryRecord:
    return RecoveryRecord(
        id=int(row["id"]),
        execution_id=row["execution_id"],
        recovered_at=row["recovered_at"],
        recovered_by_worker=row["recovered_by_worker"],
        recovery_reason=row["recovery_reason"],
        previous_status=row["previous_status"],
        previous_worker_id=row["previous_worker_id"],
    )


def execution_from_row(row: Row) -> Execution:
    return Execution(
        id=row["id"],
        flow_id=row["flow_id"],
        owner_id=row["owner_id"],
        root_execution_id=row["root_execution_id"],
        parent_execution_id=row["parent_execution_id"],
        status=ExecutionStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        error_message=row["error_message"],
        error_node_id=row["error_node_id"],
        execution_depth=int(row["execution_depth"]),
        options=ExecutionOptions.parse(row["options"]),
        integration=row["integration"],
        external_events=row["external_events"],
        failure_count=int(row["failure_count"]),
        last_failure_reason=row["last_failure_reason"],
        last_failure_at=row["last_failure_at"],
        processing_started_at=row["processing_started_at"],
        processing_worker_id=row["processing_worker_id"],
        available_at=row["available_at"],
        result=row["result"],
        priority=int(row["priority"]),
        idempotency_key=row["idempotency_key"],
    )


def started_from_row(row: Row) -> StartedExecution:
    """A started execution's row carries its new claim: claiming sets the processing fields
    with the lease (`processing_started_at` = `lease_claimed_at`, `claim_epoch` = the epoch)
    and `available_at` to the lease's `lease_expires_at`, and nothing has heartbeated it yet."""
    claim = ExecutionClaim(
        execution_id=row["id"],
        worker_id=row["processing_worker_id"],
        claimed_at=row["processing_started_at"],
        expires_at=row["available_at"],
        heartbeat_at=row["processing_started_at"],
        status=ClaimStatus.ACTIVE,
        epoch=int(row["claim_epoch"]),
    )
    return StartedExecution(claim=claim, execution=execution_from_row(row))


def root_from_row(row: Row) -> RootExecution:
    """A root listing's row: the execution plus its page aggregates."""
    return RootExecution(
        execution=execution_from_row(row),
        levels=int(row["levels"]),
        total_nested=int(row["total_nested"]),
    )


def tree_node_from_row(row: Row) -> ExecutionTreeNode:
    return ExecutionTreeNode(
        id=row["id"],
        parent_id=row["parent_execution_id"],
        level=int(row["level"]),
        execution=execution_from_row(row),
    )


def stats_from_rows(counts: list[Row], extra: Row) -> StoreStats:
    return StoreStats(
        counts_by_status={r["status"]: int(r["n"]) for r in counts},
        active_claims=int(extra["active_claims"]),
        oldest_queued_at=extra["oldest_queued_at"],
        recoveries_last_hour=int(extra["recoveries_last_hour"]),
    )


def fence_holds(row: Row, fence: Fence) -> bool:
    return row["processing_worker_id"] == fence[0] and int(row["claim_epoch"]) == fence[1]


def encode_json(value: Any, name: str) -> str | None:
    return None if value is None else check_json(value, name)


def encode_new_execution(e: Execution) -> dict[str, Any]:
    """The insert parameters both backends use; JSON columns as canonical text."""
    return {
        "id": e.id,
        "flow_id": e.flow_id,
        "owner_id": e.owner_id,
        "root_execution_id": e.root_execution_id,
        "parent_execution_id": e.parent_execution_id,
        "status": e.status.value,
        "created_at": e.created_at.astimezone(UTC),
        "updated_at": e.updated_at.astimezone(UTC),
        "execution_depth": e.execution_depth,
        "options": None if e.options is None else check_json(e.options.to_json(), "options"),
        "integration": encode_json(e.integration, "integration"),
        "external_events": encode_json(e.external_events, "external_events"),
        "run_at": None if e.available_at is None else e.available_at.astimezone(UTC),
        "priority": e.priority,
        "idempotency_key": e.idempotency_key,
    }
