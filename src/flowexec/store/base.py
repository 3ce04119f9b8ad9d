"""The `ExecutionStore` contract over a backend's primitives, once for every SQL backend.

Hot paths cost one primitive; the extra reads that explain a refused write run only after the
write was refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from flowexec.errors import (
    ClaimLost,
    ExecutionExists,
    ExecutionNotFound,
    InvalidTransition,
    ValidationError,
)
from flowexec.model import (
    DEFAULT_TREE_NODES,
    MAX_TREE_NODES,
    Completion,
    Execution,
    ExecutionClaim,
    ExecutionStatus,
    ExecutionTreeNode,
    RootExecution,
    StoreStats,
    UpdateExecutionStatusParams,
    WorkBatch,
    check_child_of,
    check_datetime,
    check_fence,
    check_id,
    check_int_range,
    check_limit,
    check_new_execution,
    check_optional_text,
    check_status,
    check_timeout_ms,
)
from flowexec.store import checks
from flowexec.store.batches import BatchRefused, check_create_batch
from flowexec.store.checkpoints import CheckpointFacade
from flowexec.store.commands import (
    ClaimAndStart,
    Fence,
    RootPageQuery,
    StatusEffect,
    StatusWrite,
)
from flowexec.store.cursors import PagePosition, page_cursor
from flowexec.store.event_log import EventLogFacade
from flowexec.store.failures import FailureFacade
from flowexec.store.flows import FlowCountsFacade
from flowexec.store.lifecycle import status_write_events
from flowexec.store.limits import MAX_BATCH
from flowexec.store.queue_stats import QueueStatsFacade
from flowexec.store.rows import (
    claim_from_row,
    encode_json,
    encode_new_execution,
    execution_from_row,
    fence_holds,
    root_from_row,
    started_from_row,
    stats_from_rows,
    tree_node_from_row,
)
from flowexec.store.scheduling import ScheduleSlotsFacade, check_running_limits
from flowexec.store.status_listing import StatusListingFacade
from flowexec.store.tokens import TokenFacade
from flowexec.store.workers import WorkerRegistryFacade


class SqlExecutionStore(
    FailureFacade,
    ScheduleSlotsFacade,
    TokenFacade,
    FlowCountsFacade,
    EventLogFacade,
    CheckpointFacade,
    QueueStatsFacade,
    WorkerRegistryFacade,
    StatusListingFacade,
):
    """The `ExecutionStore` contract over backend primitives."""

    # ------------------------------------------------------------ executions

    async def create(
        self,
        execution: Execution,
        *,
        start: bool = True,
        fence: Fence | None = None,
    ) -> str:
        e = check_new_execution(execution, max_depth=self.max_depth)
        if fence is not None and (not isinstance(fence, tuple) or len(fence) != 2):
            raise ValidationError(f"fence must be a (worker_id, epoch) pair, not {fence!r:.60}")
        checked_fence = None if fence is None else check_fence(*fence)
        if checked_fence is not None and e.parent_execution_id is None:
            raise ValidationError("a fence guards a child's parent; a root has no parent")
        params = encode_new_execution(e)
        while True:
            if await self._insert_execution(params, start=start, fence=checked_fence):
                if start:
                    self._signal_work()
                return e.id
            if e.idempotency_key is not None and await self._fetch_execution(e.id) is None:
                holder = await self._fetch_by_key(e.flow_id, e.idempotency_key)
                if holder is not None:
                    return str(holder["id"])
                if e.parent_execution_id is None:
                    continue  # the holder was deleted meanwhile: the key is free again
            await self._explain_refused_insert(e, checked_fence)
            return e.id

    async def get_by_idempotency_key(self, flow_id: str, key: str) -> Execution | None:
        row = await self._fetch_by_key(check_id(flow_id, "flow_id"), check_id(key, "key"))
        return None if row is None else execution_from_row(row)

    async def create_many(
        self, executions: Sequence[Execution], *, start: bool = True
    ) -> set[str]:
        batch = check_create_batch(executions, max_depth=self.max_depth)
        if not batch.executions:
            return set()
        while True:
            try:
                created = await self._insert_executions(batch, start=start)
            except BatchRefused as refused:
                for e in refused.refused:  # parents first: the first real cause raises
                    await self._explain_refused_insert(e, None)
                continue  # each one was meanwhile created as given, by another caller
            if created and start:
                self._signal_work()
            return created

    async def _explain_refused_insert(self, e: Execution, fence: Fence | None) -> None:
        existing = await self.get(e.id)
        if existing is not None:
            differences = e.content_differences(existing)
            if differences:
                raise ExecutionExists(e.id, differences)
            return  # the same execution again: a safe retry
        assert e.parent_execution_id is not None, "a root insert is refused only by its id"
        parent_row = await self._fetch_execution(e.parent_execution_id)
        if parent_row is None:
            raise ExecutionNotFound(e.parent_execution_id)
        parent = execution_from_row(parent_row)
        check_child_of(e, parent)
        if fence is not None and not fence_holds(parent_row, fence):
            raise ClaimLost(parent.id, *fence)
        raise ValidationError(f"execution {e.id!r} was refused; its parent changed meanwhile")

    async def get(self, id: str) -> Execution | None:
        row = await self._fetch_execution(check_id(id, "id"))
        return None if row is None else execution_from_row(row)

    async def delete(self, id: str) -> bool:
        return await self._delete_tree(check_id(id, "id"))

    async def update_execution_status(self, params: UpdateExecutionStatusParams) -> bool:
        if not isinstance(params, UpdateExecutionStatusParams):
            raise ValidationError("update_execution_status takes UpdateExecutionStatusParams")
        status = check_status(params.status)
        sources = checks.status_sources(status, params.expected_status)
        error_message = check_optional_text(params.error_message, "error_message")
        error_node_id = (
            None if params.error_node_id is None
            else check_id(params.error_node_id, "error_node_id")
        )
        write = StatusWrite(
            execution_id=check_id(params.execution_id, "execution_id"),
            status=status,
            effect=StatusEffect.of(status),
            sources=sources,
            fence=check_fence(params.worker_id, params.epoch),
            error_message=error_message,
            error_node_id=error_node_id,
            started_at=(
                None if params.started_at is None
                else check_datetime(params.started_at, "started_at")
            ),
            completed_at=(
                None if params.completed_at is None
                else check_datetime(params.completed_at, "completed_at")
            ),
            result_json=encode_json(params.result, "result"),
            events=status_write_events(
                status,
                sources,
                error_message=error_message,
                error_node_id=error_node_id,
                extra=checks.event_details(params.event_data),
            ),
        )
        if await self._write_status(write):
            if write.effect is StatusEffect.REQUEUE:
                self._signal_work()
            return True
        row = await self._fetch_execution(write.execution_id)
        if row is None:
            return False
        if write.fence is not None and not fence_holds(row, write.fence):
            raise ClaimLost(write.execution_id, *write.fence)
        raise InvalidTransition(
            write.execution_id, ExecutionStatus(row["status"]), status,
            required=None if params.expected_status is None else ExecutionStatus(sources[0]),
        )

    async def start_execution(self, id: str) -> bool:
        check_id(id, "id")
        if await self._make_runnable(id):
            self._signal_work()
            return True
        row = await self._fetch_execution(id)
        if row is None:
            raise ExecutionNotFound(id)
        if row["status"] != ExecutionStatus.CREATED.value:
            raise InvalidTransition(
                id, ExecutionStatus(row["status"]), ExecutionStatus.CREATED, action="started",
                required=ExecutionStatus.CREATED,
            )
        return False

    async def get_root_executions(
        self,
        flow_id: str,
        limit: int = 50,
        after: PagePosition | None = None,
        *,
        owner_id: str | None = None,
        status: ExecutionStatus | str | None = None,
    ) -> list[RootExecution]:
        query = RootPageQuery(
            flow_id=check_id(flow_id, "flow_id"),
            limit=check_limit(limit),
            cursor=page_cursor(after),
            owner_id=None if owner_id is None else check_id(owner_id, "owner_id"),
            status=None if status is None else check_status(status),
        )
        return [root_from_row(row) for row in await self._root_page(query)]

    async def get_child_executions(self, parent_id: str) -> list[Execution]:
        return [execution_from_row(r) for r in await self._children(check_id(parent_id, "id"))]

    async def get_execution_tree(
        self, execution_id: str, *, max_nodes: int | None = None
    ) -> list[ExecutionTreeNode]:
        check_id(execution_id, "execution_id")
        bound = DEFAULT_TREE_NODES if max_nodes is None else check_limit(
            max_nodes, "max_nodes", MAX_TREE_NODES
        )
        return [tree_node_from_row(r) for r in await self._subtree(execution_id, bound)]

    async def get_statuses(self, ids: Sequence[str]) -> dict[str, ExecutionStatus]:
        checks.check_sequence(ids, "get_statuses takes a sequence of ids")
        checked = [check_id(i, "id") for i in ids]
        if not checked:
            return {}
        return {r["id"]: ExecutionStatus(r["status"]) for r in await self._statuses(checked)}

    # ------------------------------------------------------------ claims

    async def claim_execution(
        self, execution_id: str, worker_id: str, timeout_ms: int
    ) -> ExecutionClaim | None:
        check_id(execution_id, "execution_id")
        check_id(worker_id, "worker_id")
        check_timeout_ms(timeout_ms)
        row = await self._claim_one(execution_id, worker_id, timeout_ms)
        return None if row is None else claim_from_row(row)

    async def claim_next(
        self,
        worker_id: str,
        timeout_ms: int,
        *,
        limit: int = 1,
        flow_ids: Sequence[str] | None = None,
    ) -> list[ExecutionClaim]:
        check_id(worker_id, "worker_id")
        check_timeout_ms(timeout_ms)
        check_limit(limit, high=MAX_BATCH)
        flows = checks.check_flow_ids(flow_ids)
        if flows == []:
            return []
        rows = await self._claim_batch(worker_id, timeout_ms, limit, flows)
        return [claim_from_row(r) for r in rows]

    async def claim_and_start(
        self,
        worker_id: str,
        timeout_ms: int,
        *,
        limit: int = 1,
        flow_ids: Sequence[str] | None = None,
        complete: Sequence[Completion] = (),
        running_limits: Mapping[str, int] | None = None,
    ) -> WorkBatch:
        check_id(worker_id, "worker_id")
        check_timeout_ms(timeout_ms)
        check_int_range(limit, "limit", 0, MAX_BATCH)
        flows = checks.check_flow_ids(flow_ids)
        if flows == []:
            limit = 0  # no flow can match: complete only
        completions = checks.check_completions(complete)
        if limit == 0 and not completions:
            return WorkBatch(started=[], completed=frozenset())
        rows, completed = await self._claim_and_start(
            ClaimAndStart(
                worker_id, timeout_ms, limit, flows, completions,
                check_running_limits(running_limits),
            )
        )
        return WorkBatch(
            started=[started_from_row(r) for r in rows], completed=frozenset(completed)
        )

    async def release_execution(
        self, execution_id: str, worker_id: str, *, epoch: int | None = None
    ) -> bool:
        check_id(execution_id, "execution_id")
        check_id(worker_id, "worker_id")
        if epoch is not None:
            check_fence(worker_id, epoch)
        if await self._release(execution_id, worker_id, epoch):
            self._signal_work()
            return True
        return False

    async def extend_claim(
        self, execution_id: str, worker_id: str, timeout_ms: int, *, epoch: int | None = None
    ) -> bool:
        check_id(execution_id, "execution_id")
        check_id(worker_id, "worker_id")
        check_timeout_ms(timeout_ms)
        if epoch is not None:
            check_fence(worker_id, epoch)
        return bool(await self._extend(worker_id, [(execution_id, epoch)], timeout_ms))

    async def extend_claims(
        self, worker_id: str, claims: Sequence[tuple[str, int]], timeout_ms: int
    ) -> set[str]:
        check_id(worker_id, "worker_id")
        check_timeout_ms(timeout_ms)
        pairs: list[tuple[str, int | None]] = list(checks.check_claim_pairs(worker_id, claims))
        if not pairs:
            return set()
        return await self._extend(worker_id, pairs, timeout_ms)

    async def get_active_claims(self, *, worker_id: str | None = None) -> list[ExecutionClaim]:
        if worker_id is not None:
            check_id(worker_id, "worker_id")
        return [claim_from_row(r) for r in await self._active_claims(worker_id)]

    async def get_claim_for_execution(self, execution_id: str) -> ExecutionClaim | None:
        row = await self._claim_row(check_id(execution_id, "execution_id"))
        return None if row is None else claim_from_row(row)

    async def expire_old_claims(self, *, leader: int | None = None) -> int:
        async with self._leading(leader) as leading:
            return await self._expire_claims() if leading else 0

    # ------------------------------------------------------------ operations

    async def purge_finished(
        self, before: datetime, *, limit: int = MAX_BATCH, statuses: Sequence[str] | None = None
    ) -> int:
        return await self._purge(
            check_datetime(before, "before"), check_limit(limit),
            checks.check_finished_statuses(statuses),
        )

    async def count_purgeable(
        self, before: datetime, *, statuses: Sequence[str] | None = None
    ) -> int:
        return await self._count_purgeable(
            check_datetime(before, "before"), checks.check_finished_statuses(statuses)
        )

    async def get_stats(self) -> StoreStats:
        return stats_from_rows(*await self._stats_rows())
