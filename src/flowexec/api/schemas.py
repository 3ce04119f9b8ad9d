"""What goes over the wire: request bodies and responses, as pydantic models for the OpenAPI
document. Times are ISO 8601 UTC; ids and cursors are opaque strings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowexec.model import (
    Execution,
    ExecutionClaim,
    ExecutionEvent,
    ExecutionTreeNode,
    RecoveryRecord,
    RootExecution,
    StoreStats,
)
from flowexec.store.limits import MAX_CREATE_BATCH


class Closed(BaseModel):
    """Unknown fields are refused, so a typo never passes as a default."""

    model_config = ConfigDict(extra="forbid")


class CreateExecution(Closed):
    flow_id: str
    owner_id: str | None = Field(
        None, description="Defaults to the token's owner; only an admin token may name another."
    )
    integration: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None
    start: bool = True


class BatchItem(Closed):
    owner_id: str | None = None
    integration: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None


class CreateBatch(Closed):
    flow_id: str
    items: list[BatchItem] = Field(max_length=MAX_CREATE_BATCH)
    start: bool = True


class Reason(Closed):
    reason: str | None = None


class Created(BaseModel):
    id: str


class CreatedBatch(BaseModel):
    ids: list[str]


class Started(BaseModel):
    started: bool = Field(description="False if the execution was already runnable.")


class ExecutionOut(BaseModel):
    id: str
    flow_id: str
    owner_id: str
    root_execution_id: str
    parent_execution_id: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    error_message: str | None
    error_node_id: str | None
    execution_depth: int
    options: dict[str, Any] | None
    integration: dict[str, Any] | None
    external_events: list[dict[str, Any]] | None
    failure_count: int
    last_failure_reason: str | None
    last_failure_at: datetime | None
    processing_started_at: datetime | None
    processing_worker_id: str | None
    available_at: datetime | None
    result: Any = None

    @classmethod
    def of(cls, execution: Execution) -> ExecutionOut:
        return cls(
            id=execution.id,
            flow_id=execution.flow_id,
            owner_id=execution.owner_id,
            root_execution_id=execution.root_execution_id,
            parent_execution_id=execution.parent_execution_id,
            status=execution.status.value,
            created_at=execution.created_at,
            updated_at=execution.updated_at,
            started_at=execution.started_at,
            completed_at=execution.completed_at,
            error_message=execution.error_message,
            error_node_id=execution.error_node_id,
            execution_depth=execution.execution_depth,
            options=None if execution.options is None else execution.options.to_json(),
            integration=execution.integration,
            external_events=execution.external_events,
            failure_count=execution.failure_count,
            last_failure_reason=execution.last_failure_reason,
            last_failure_at=execution.last_failure_at,
            processing_started_at=execution.processing_started_at,
            processing_worker_id=execution.processing_worker_id,
            available_at=execution.available_at,
            result=execution.result,
        )


class RootOut(BaseModel):
    execution: ExecutionOut
    levels: int
    total_nested: int

    @classmethod
    def of(cls, root: RootExecution) -> RootOut:
        return cls(
            execution=ExecutionOut.of(root.execution),
            levels=root.levels,
            total_nested=root.total_nested,
        )


class RootPage(BaseModel):
    items: list[RootOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class TreeNodeOut(BaseModel):
    id: str
    parent_id: str | None
    level: int
    execution: ExecutionOut

    @classmethod
    def of(cls, node: ExecutionTreeNode) -> TreeNodeOut:
        return cls(
            id=node.id,
            parent_id=node.parent_id,
            level=node.level,
            execution=ExecutionOut.of(node.execution),
        )


class Tree(BaseModel):
    nodes: list[TreeNodeOut]


class ClaimOut(BaseModel):
    execution_id: str
    worker_id: str
    claimed_at: datetime
    expires_at: datetime
    heartbeat_at: datetime
    status: str
    epoch: int

    @classmethod
    def of(cls, claim: ExecutionClaim) -> ClaimOut:
        return cls(
            execution_id=claim.execution_id,
            worker_id=claim.worker_id,
            claimed_at=claim.claimed_at,
            expires_at=claim.expires_at,
            heartbeat_at=claim.heartbeat_at,
            status=claim.status.value,
            epoch=claim.epoch,
        )


class ClaimHolder(BaseModel):
    claim: ClaimOut | None = Field(description="Null when no worker ever claimed it.")


class RecoveryOut(BaseModel):
    id: int
    execution_id: str
    recovered_at: datetime
    recovered_by_worker: str
    recovery_reason: str
    previous_status: str | None
    previous_worker_id: str | None

    @classmethod
    def of(cls, record: RecoveryRecord) -> RecoveryOut:
        return cls(
            id=record.id,
            execution_id=record.execution_id,
            recovered_at=record.recovered_at,
            recovered_by_worker=record.recovered_by_worker,
            recovery_reason=record.recovery_reason,
            previous_status=record.previous_status,
            previous_worker_id=record.previous_worker_id,
        )


class Recoveries(BaseModel):
    items: list[RecoveryOut]


class EventOut(BaseModel):
    execution_id: str
    index: int
    type: str
    at: datetime
    attempt: int
    data: dict[str, Any]

    @classmethod
    def of(cls, event: ExecutionEvent) -> EventOut:
        return cls(
            execution_id=event.execution_id,
            index=event.index,
            type=event.type,
            at=event.at,
            attempt=event.attempt,
            data=event.data,
        )


class EventPage(BaseModel):
    items: list[EventOut]
    next_index: int = Field(description="Pass as `from_index` to read on.")


class StatsOut(BaseModel):
    counts_by_status: dict[str, int]
    active_claims: int
    oldest_queued_at: datetime | None
    recoveries_last_hour: int

    @classmethod
    def of(cls, stats: StoreStats) -> StatsOut:
        return cls(
            counts_by_status=stats.counts_by_status,
            active_claims=stats.active_claims,
            oldest_queued_at=stats.oldest_queued_at,
            recoveries_last_hour=stats.recoveries_last_hour,
        )


class FlowOut(BaseModel):
    flow_id: str
    counts_by_status: dict[str, int]


class Flows(BaseModel):
    items: list[FlowOut]


class Health(BaseModel):
    status: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
