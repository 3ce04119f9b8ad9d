"""A worker's hold on one execution: every write it makes for the run, fenced by its claim.

Keeping the `(worker_id, epoch)` fence in one object means no write of a run can forget it;
a write after the claim was taken over raises `ClaimLost` and changes nothing
(docs/architecture.md §4). The run's events go through its worker's `EventBuffer`, and every
status write flushes them first, so the log keeps the run's order.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowexec.errors import ClaimLost, ExecutionNotFound
from flowexec.model import (
    JSON,
    EventBatch,
    EventType,
    Execution,
    ExecutionClaim,
    ExecutionStatus,
    NewEvent,
    NodeCheckpoint,
    UpdateExecutionStatusParams,
)
from flowexec.runtime.event_buffer import EventBuffer
from flowexec.store.protocol import ExecutionStore


@dataclass(frozen=True, slots=True)
class Lease:
    store: ExecutionStore
    execution_id: str
    worker_id: str
    epoch: int
    events: EventBuffer | None = None

    @classmethod
    def of(
        cls, store: ExecutionStore, claim: ExecutionClaim, events: EventBuffer | None = None
    ) -> Lease:
        return cls(store, claim.execution_id, claim.worker_id, claim.epoch, events)

    def record(self, type: EventType, data: dict[str, JSON]) -> None:
        """Buffer a run event; the worker's flusher writes it, fenced by this lease."""
        if self.events is not None:
            self.events.add((self.execution_id, self.epoch), NewEvent(type, data))

    async def record_step(self, event: NewEvent, checkpoint: NodeCheckpoint) -> None:
        """Record a node's result with its event, and return once both are durable;
        `ClaimLost` (nothing recorded) if this lease is gone."""
        if self.events is not None:
            await self.events.record((self.execution_id, self.epoch), event, checkpoint)
            return
        batch = EventBatch(self.execution_id, self.epoch, (event,), (checkpoint,))
        if not await self.store.append_events(self.worker_id, [batch]):
            raise ClaimLost(self.execution_id, self.worker_id, self.epoch)

    async def recorded_steps(self) -> dict[str, JSON]:
        """What earlier attempts recorded. A first claim (epoch 1) has no earlier attempt,
        so it reads nothing."""
        if self.epoch == 1:
            return {}
        return await self.store.get_checkpoints(self.execution_id)

    async def flush_events(self) -> None:
        """Write this run's buffered events now (before any status write of the run)."""
        if self.events is not None:
            await self.events.flush((self.execution_id, self.epoch))

    async def set_status(
        self,
        status: ExecutionStatus,
        *,
        error_message: str | None = None,
        error_node_id: str | None = None,
        result: JSON = None,
        event_data: dict[str, JSON] | None = None,
    ) -> None:
        await self.flush_events()
        params = UpdateExecutionStatusParams(
            execution_id=self.execution_id,
            status=status,
            error_message=error_message,
            error_node_id=error_node_id,
            result=result,
            worker_id=self.worker_id,
            epoch=self.epoch,
            event_data=event_data,
        )
        if not await self.store.update_execution_status(params):
            raise ExecutionNotFound(self.execution_id)

    async def retry(
        self,
        *,
        reason: str,
        delay_ms: int,
        count_failure: bool = True,
        max_failures: int | None = None,
        error_node_id: str | None = None,
        event_data: dict[str, JSON] | None = None,
        suspend: bool = False,
    ) -> Execution:
        await self.flush_events()
        return await self.store.retry_execution(
            self.execution_id,
            worker_id=self.worker_id,
            epoch=self.epoch,
            reason=reason,
            delay_ms=delay_ms,
            count_failure=count_failure,
            max_failures=max_failures,
            error_node_id=error_node_id,
            event_data=event_data,
            suspend=suspend,
        )

    async def create_child(self, child: Execution) -> None:
        await self.store.create(child, fence=(self.worker_id, self.epoch))
