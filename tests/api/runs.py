"""Driving an execution through its life with store calls, as a worker would, so tests see
real events without a worker process."""

from __future__ import annotations

from flowexec.model import (
    EventBatch,
    EventType,
    ExecutionStatus,
    NewEvent,
    UpdateExecutionStatusParams,
)
from flowexec.store.protocol import ExecutionStore

WORKER = "api-test-worker"


async def claim(store: ExecutionStore, execution_id: str) -> int:
    """Claim and start the execution (`flow:started`); the claim's epoch."""
    taken = await store.claim_execution(execution_id, WORKER, 60_000)
    assert taken is not None
    await store.update_execution_status(
        UpdateExecutionStatusParams(
            execution_id, ExecutionStatus.RUNNING, worker_id=WORKER, epoch=taken.epoch
        )
    )
    return taken.epoch


async def log_lines(store: ExecutionStore, execution_id: str, epoch: int, *lines: str) -> None:
    events = tuple(NewEvent(EventType.LOG, {"message": line}) for line in lines)
    assert await store.append_events(WORKER, [EventBatch(execution_id, epoch, events)])


async def complete(store: ExecutionStore, execution_id: str, epoch: int) -> None:
    await store.update_execution_status(
        UpdateExecutionStatusParams(
            execution_id, ExecutionStatus.COMPLETED, worker_id=WORKER, epoch=epoch, result={"ok": 1}
        )
    )
