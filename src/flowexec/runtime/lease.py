"""A worker's hold on one execution: every write it makes for the run, fenced by its claim.

Keeping the `(worker_id, epoch)` fence in one object means no write of a run can forget it;
a write after the claim was taken over raises `ClaimLost` and changes nothing
(docs/architecture.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass

from flowexec.errors import ExecutionNotFound
from flowexec.model import (
    JSON,
    Execution,
    ExecutionClaim,
    ExecutionStatus,
    UpdateExecutionStatusParams,
)
from flowexec.store.protocol import ExecutionStore


@dataclass(frozen=True, slots=True)
class Lease:
    store: ExecutionStore
    execution_id: str
    worker_id: str
    epoch: int

    @classmethod
    def of(cls, store: ExecutionStore, claim: ExecutionClaim) -> Lease:
        return cls(store, claim.execution_id, claim.worker_id, claim.epoch)

    async def set_status(
        self,
        status: ExecutionStatus,
        *,
        error_message: str | None = None,
        error_node_id: str | None = None,
        result: JSON = None,
    ) -> None:
        params = UpdateExecutionStatusParams(
            execution_id=self.execution_id,
            status=status,
            error_message=error_message,
            error_node_id=error_node_id,
            result=result,
            worker_id=self.worker_id,
            epoch=self.epoch,
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
    ) -> Execution:
        return await self.store.retry_execution(
            self.execution_id,
            worker_id=self.worker_id,
            epoch=self.epoch,
            reason=reason,
            delay_ms=delay_ms,
            count_failure=count_failure,
            max_failures=max_failures,
            error_node_id=error_node_id,
        )

    async def create_child(self, child: Execution) -> None:
        await self.store.create(child, fence=(self.worker_id, self.epoch))
