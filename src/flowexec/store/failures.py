"""Failures, retries and recovery: their half of the `ExecutionStore` contract, once for
every SQL backend (docs/architecture.md §6)."""


from __future__ import annotations

from flowexec.errors import (
    ClaimLost,
    ExecutionNotFound,
    InvalidTransition,
)
from flowexec.model import (
    JSON,
    Execution,
    ExecutionStatus,
    RecoveryRecord,
    check_id,
    check_limit,
    check_positive,
    check_status,
    check_text,
)
from flowexec.policy import DEFAULT_LEADER_LEASE_S, DEFAULT_RECOVERY, Backoff, RecoveryPolicy
from flowexec.store import checks
from flowexec.store.commands import (
    RecoveryRecordWrite,
    RetryWrite,
)
from flowexec.store.lifecycle import retry_events
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import (
    execution_from_row,
    fence_holds,
    recovery_from_row,
)


class FailureFacade(SqlPrimitives):
    """Failure info, retries, recovery sweeps and records, and the recovery election."""


    async def update_failure_info(
        self, execution_id: str, failure_count: int, reason: str
    ) -> bool:
        check_id(execution_id, "execution_id")
        checks.check_failure_count(failure_count)
        check_text(reason, "reason")
        return await self._set_failure_info(execution_id, failure_count, reason)

    async def retry_execution(
        self,
        execution_id: str,
        *,
        worker_id: str,
        epoch: int,
        reason: str,
        delay_ms: int = 0,
        count_failure: bool = True,
        max_failures: int | None = None,
        error_node_id: str | None = None,
        event_data: dict[str, JSON] | None = None,
        suspend: bool = False,
    ) -> Execution:
        fence = checks.required_fence(worker_id, epoch)
        count_failure = bool(count_failure) and not suspend
        reason = check_text(reason, "reason")
        delay_ms = checks.check_backoff_ms(delay_ms, "delay_ms")
        write = RetryWrite(
            execution_id=check_id(execution_id, "execution_id"),
            worker_id=fence[0],
            epoch=fence[1],
            reason=reason,
            delay_ms=delay_ms,
            count_failure=bool(count_failure),
            max_failures=None if max_failures is None else checks.check_max_failures(max_failures),
            error_node_id=(
                None if error_node_id is None else check_id(error_node_id, "error_node_id")
            ),
            events=retry_events(
                reason=reason,
                delay_ms=delay_ms,
                count_failure=bool(count_failure),
                extra=checks.event_details(event_data),
                suspend=bool(suspend),
            ),
        )
        row = await self._retry(write)
        if row is not None:
            if row["status"] == ExecutionStatus.CREATED.value:
                self._signal_work()
            return execution_from_row(row)
        current = await self._fetch_execution(write.execution_id)
        if current is None:
            raise ExecutionNotFound(write.execution_id)
        if not fence_holds(current, fence):
            raise ClaimLost(write.execution_id, *fence)
        raise InvalidTransition(
            write.execution_id, ExecutionStatus(current["status"]), ExecutionStatus.CREATED,
            action="retried",
        )

    async def get_executions_needing_recovery(
        self, limit: int = DEFAULT_RECOVERY.batch_size
    ) -> list[Execution]:
        return [execution_from_row(r) for r in await self._needing_recovery(check_limit(limit))]

    async def recover_executions(
        self,
        worker_id: str,
        *,
        max_failures: int = DEFAULT_RECOVERY.max_failures,
        backoff_base_ms: int = DEFAULT_RECOVERY.backoff.base_ms,
        backoff_max_ms: int = DEFAULT_RECOVERY.backoff.max_ms,
        limit: int = DEFAULT_RECOVERY.batch_size,
        leader: int | None = None,
    ) -> list[RecoveryRecord]:
        check_id(worker_id, "worker_id")
        policy = RecoveryPolicy(
            max_failures=checks.check_max_failures(max_failures),
            backoff=Backoff(
                base_ms=checks.check_backoff_ms(backoff_base_ms, "backoff_base_ms"),
                max_ms=checks.check_backoff_ms(backoff_max_ms, "backoff_max_ms"),
            ),
            batch_size=check_limit(limit),
        )
        async with self._leading(leader) as leading:
            rows = await self._recover(worker_id, policy) if leading else []
        records = [recovery_from_row(r) for r in rows]
        if records:
            self._signal_work()
        return records

    async def record_recovery(
        self,
        execution_id: str,
        worker_id: str,
        reason: str,
        previous_status: str | None = None,
        previous_worker_id: str | None = None,
    ) -> RecoveryRecord:
        write = RecoveryRecordWrite(
            execution_id=check_id(execution_id, "execution_id"),
            worker_id=check_id(worker_id, "worker_id"),
            reason=check_text(reason, "reason"),
            previous_status=(
                None if previous_status is None
                else check_status(previous_status, "previous_status").value
            ),
            previous_worker_id=(
                None if previous_worker_id is None
                else check_id(previous_worker_id, "previous_worker_id")
            ),
        )
        row = await self._insert_recovery(write)
        if row is None:
            raise ExecutionNotFound(execution_id)
        return recovery_from_row(row)

    async def get_recovery_history(self, execution_id: str) -> list[RecoveryRecord]:
        rows = await self._recovery_rows(check_id(execution_id, "execution_id"))
        return [recovery_from_row(r) for r in rows]

    async def try_acquire_recovery_lock(
        self, lock_id: int, *, lease_s: float = DEFAULT_LEADER_LEASE_S
    ) -> bool:
        check_positive(lease_s, "lease_s")
        return await self._locks.try_lock(checks.check_lock_id(lock_id), float(lease_s))

    async def release_recovery_lock(self, lock_id: int) -> bool:
        return await self._locks.unlock(checks.check_lock_id(lock_id))
