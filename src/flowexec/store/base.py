"""What every SQL backend shares: input checks, row mapping, status effects and error diagnosis.

A backend supplies the primitives (one statement or one transaction each, in its own SQL);
this class turns them into the `ExecutionStore` contract. Hot paths cost one primitive; the
extra reads that explain a refused write run only after the write was refused.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar

from flowexec.closing import AsyncClosing
from flowexec.errors import (
    ClaimLost,
    ExecutionExists,
    ExecutionNotFound,
    InvalidTransition,
    ValidationError,
)
from flowexec.model import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_TREE_NODES,
    MAX_TREE_NODES,
    ClaimStatus,
    Completion,
    Execution,
    ExecutionClaim,
    ExecutionOptions,
    ExecutionStatus,
    ExecutionTreeNode,
    RecoveryReason,
    RecoveryRecord,
    RootExecution,
    StartedExecution,
    StoreStats,
    UpdateExecutionStatusParams,
    WorkBatch,
    can_transition,
    check_datetime,
    check_epoch,
    check_fence,
    check_id,
    check_int_range,
    check_json,
    check_limit,
    check_new_execution,
    check_optional_text,
    check_status,
    check_table_prefix,
    check_text,
    check_timeout_ms,
    sources_of,
)

Row = dict[str, Any]
"""A row with canonical Python values: aware UTC datetimes, decoded JSON."""

MAX_FAILURES_LIMIT = 1_000_000
MAX_BACKOFF_MS = 7 * 24 * 60 * 60 * 1000
MAX_BATCH = 1000
"""Largest `limit` of a claiming call, and most completions one `claim_and_start` writes."""


class StatusEffect(Enum):
    """What entering a status does besides setting it (SPEC §3)."""

    RUN = "run"  # started_at set once, never reset
    PAUSE = "pause"
    FINISH = "finish"  # completed_at set, claim released, processing fields cleared
    REQUEUE = "requeue"  # completed_at and processing fields cleared, claim released, runnable now

    @classmethod
    def of(cls, status: ExecutionStatus) -> StatusEffect:
        if status.is_terminal:
            return cls.FINISH
        return {
            ExecutionStatus.RUNNING: cls.RUN,
            ExecutionStatus.PAUSED: cls.PAUSE,
            ExecutionStatus.CREATED: cls.REQUEUE,
        }[status]


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """A checked `update_execution_status`, ready for a backend to run."""

    execution_id: str
    status: ExecutionStatus
    effect: StatusEffect
    sources: list[str]
    fence: tuple[str, int] | None
    error_message: str | None
    error_node_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    result_json: str | None


@dataclass(frozen=True, slots=True)
class CompletionWrite:
    """A checked `Completion`: fenced by the claiming worker and this epoch."""

    execution_id: str
    epoch: int
    result_json: str | None

    def as_status_write(self, worker_id: str) -> StatusWrite:
        """The same write as `update_execution_status(COMPLETED)`, fenced, from `running`."""
        return StatusWrite(
            execution_id=self.execution_id,
            status=ExecutionStatus.COMPLETED,
            effect=StatusEffect.FINISH,
            sources=[ExecutionStatus.RUNNING.value],
            fence=(worker_id, self.epoch),
            error_message=None,
            error_node_id=None,
            started_at=None,
            completed_at=None,
            result_json=self.result_json,
        )


@dataclass(frozen=True, slots=True)
class RetryWrite:
    """A checked `retry_execution`."""

    execution_id: str
    worker_id: str
    epoch: int
    reason: str
    delay_ms: int
    count_failure: bool
    max_failures: int | None
    error_node_id: str | None


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    max_failures: int
    backoff_base_ms: int
    backoff_max_ms: int
    limit: int

    def backoff_ms(self, failures_before: int) -> int:
        """Exponential: base * 2^(failures so far), capped."""
        return min(self.backoff_base_ms * (1 << min(failures_before, 40)), self.backoff_max_ms)

    def outcome(self, failures_before: int, reason: str) -> RecoveryOutcome:
        """What recovering an execution whose worker died does (SPEC §6).

        For backends that compute it outside SQL; the PostgreSQL statement `RECOVER` states
        the same rule in SQL, and the conformance suite holds both to it.
        """
        count = failures_before + 1
        lost = worker_lost_reason(reason)
        gives_up = count >= self.max_failures
        return RecoveryOutcome(
            failure_count=count,
            status=ExecutionStatus.FAILED if gives_up else ExecutionStatus.CREATED,
            last_failure_reason=lost,
            error_message=recovery_error_message(count, lost) if gives_up else None,
            backoff_ms=self.backoff_ms(failures_before),
            record_reason=RecoveryReason.MAX_FAILURES_EXCEEDED.value if gives_up else reason,
        )


@dataclass(frozen=True, slots=True)
class RecoveryOutcome:
    """One recovered execution: its new failure count and status, the texts, the backoff."""

    failure_count: int
    status: ExecutionStatus
    last_failure_reason: str
    error_message: str | None
    """Set when recovery gives up; None keeps the execution's error message."""
    backoff_ms: int
    record_reason: str


def worker_lost_reason(reason: str) -> str:
    """`last_failure_reason` of a recovered execution, from the recovery reason."""
    return f"worker lost: {reason}"


def recovery_error_message(failure_count: int, reason: str) -> str:
    return f"gave up after {failure_count} failures; the last: {reason}"


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
    )


def started_from_row(row: Row) -> StartedExecution:
    """A started execution's row carries its new claim: claiming sets the processing fields
    from the claim row (`processing_started_at` = `claimed_at`, `claim_epoch` = `epoch`) and
    `available_at` to the lease's `expires_at`, and nothing has heartbeated it yet."""
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
    }


def build_tree(rows: Sequence[tuple[Row, int]]) -> list[ExecutionTreeNode]:
    return [
        ExecutionTreeNode(
            id=row["id"],
            parent_id=row["parent_execution_id"],
            level=level,
            execution=execution_from_row(row),
        )
        for row, level in rows
    ]


PagePosition = datetime | RootExecution | tuple[datetime, str]
"""Where a root listing resumes: the reference's datetime, a row returned earlier, or the
(created_at, id) pair of one (what a serialised cursor carries)."""


def page_cursor(after: PagePosition | None) -> tuple[datetime, str] | None:
    """Keyset position: rows strictly before (created_at, id), newest first.

    A bare datetime (the reference's cursor) means "created before it": the empty id sorts
    before every real id, so (t, "") excludes every row created at exactly t.
    """
    if after is None:
        return None
    if isinstance(after, RootExecution):
        return after.execution.created_at.astimezone(UTC), after.execution.id
    if isinstance(after, datetime):
        return check_datetime(after, "after"), ""
    if isinstance(after, tuple) and len(after) == 2:
        return check_datetime(after[0], "after[0]"), check_id(after[1], "after[1]")
    raise ValidationError(
        "after must be a datetime, a RootExecution, a (created_at, id) pair or None, "
        f"not {type(after).__name__}"
    )


class SqlExecutionStore(AsyncClosing):
    """The `ExecutionStore` contract over backend primitives."""

    backend: ClassVar[str]

    def __init__(self, *, table_prefix: str, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.table_prefix = check_table_prefix(table_prefix)
        self.max_depth = check_int_range(max_depth, "max_depth", 1, 10_000)
        self._work_ready = asyncio.Event()

    def _signal_work(self) -> None:
        """Wake this process's own waiters; other processes learn by NOTIFY or by polling."""
        self._work_ready.set()

    async def _wait_local(self, timeout_s: float) -> bool:
        """Wait for this process's own wake-up; True if woken, False after `timeout_s`."""
        try:
            await asyncio.wait_for(self._work_ready.wait(), timeout_s)
        except TimeoutError:
            return False
        self._work_ready.clear()
        return True

    # ------------------------------------------------------------ primitives

    @abstractmethod
    async def migrate(self, *, target_version: int | None = None) -> list[str]: ...

    @abstractmethod
    async def _insert_execution(
        self, params: dict[str, Any], *, start: bool, fence: tuple[str, int] | None
    ) -> bool:
        """Insert if absent and the parent (if any) matches; True if a row was inserted."""

    @abstractmethod
    async def _fetch_execution(self, id: str) -> Row | None:
        """The row, including the internal `claim_epoch`."""

    @abstractmethod
    async def _delete_tree(self, id: str) -> bool: ...

    @abstractmethod
    async def _write_status(self, write: StatusWrite) -> bool: ...

    @abstractmethod
    async def _make_runnable(self, id: str) -> bool: ...

    @abstractmethod
    async def _root_page(
        self,
        flow_id: str,
        limit: int,
        cursor: tuple[datetime, str] | None,
        owner_id: str | None,
    ) -> list[tuple[Row, int, int]]:
        """(row, levels, total_nested), newest first."""

    @abstractmethod
    async def _children(self, parent_id: str) -> list[Row]: ...

    @abstractmethod
    async def _subtree(self, id: str, max_nodes: int) -> list[tuple[Row, int]]: ...

    @abstractmethod
    async def _statuses(self, ids: list[str]) -> list[tuple[str, str]]: ...

    @abstractmethod
    async def _claim_one(self, execution_id: str, worker_id: str, timeout_ms: int) -> Row | None:
        ...

    @abstractmethod
    async def _claim_batch(
        self, worker_id: str, timeout_ms: int, limit: int, flow_ids: list[str] | None
    ) -> list[Row]: ...

    @abstractmethod
    async def _claim_and_start(
        self,
        worker_id: str,
        timeout_ms: int,
        limit: int,
        flow_ids: list[str] | None,
        completions: list[CompletionWrite],
    ) -> tuple[list[Row], set[str]]:
        """One transaction: write the completions, then claim and start at most `limit` plus
        as many as were written. Returns the started executions' rows and the completed ids."""

    @abstractmethod
    async def _release(self, execution_id: str, worker_id: str, epoch: int | None) -> bool: ...

    @abstractmethod
    async def _extend(
        self, worker_id: str, claims: list[tuple[str, int | None]], timeout_ms: int
    ) -> set[str]: ...

    @abstractmethod
    async def _active_claims(self, worker_id: str | None) -> list[Row]: ...

    @abstractmethod
    async def _claim_row(self, execution_id: str) -> Row | None: ...

    @abstractmethod
    async def _expire_claims(self) -> int: ...

    @abstractmethod
    async def _set_failure_info(self, execution_id: str, failure_count: int, reason: str) -> bool:
        ...

    @abstractmethod
    async def _retry(self, write: RetryWrite) -> Row | None: ...

    @abstractmethod
    async def _needing_recovery(self, limit: int) -> list[Row]: ...

    @abstractmethod
    async def _recover(self, worker_id: str, policy: RecoveryPolicy) -> list[Row]: ...

    @abstractmethod
    async def _insert_recovery(
        self,
        execution_id: str,
        worker_id: str,
        reason: str,
        previous_status: str | None,
        previous_worker_id: str | None,
    ) -> Row | None: ...

    @abstractmethod
    async def _recovery_rows(self, execution_id: str) -> list[Row]: ...

    @abstractmethod
    async def _try_lock(self, lock_id: int) -> bool: ...

    @abstractmethod
    async def _unlock(self, lock_id: int) -> bool: ...

    @abstractmethod
    async def _purge(self, before: datetime, limit: int) -> int: ...

    @abstractmethod
    async def _stats(self) -> StoreStats: ...

    @abstractmethod
    async def now(self) -> datetime: ...

    @abstractmethod
    async def wait_for_work(self, timeout_s: float) -> None: ...

    # ------------------------------------------------------------ executions

    async def create(
        self,
        execution: Execution,
        *,
        start: bool = True,
        fence: tuple[str, int] | None = None,
    ) -> None:
        e = check_new_execution(execution, max_depth=self.max_depth)
        if fence is not None and (not isinstance(fence, tuple) or len(fence) != 2):
            raise ValidationError(f"fence must be a (worker_id, epoch) pair, not {fence!r:.60}")
        checked_fence = None if fence is None else check_fence(*fence)
        if checked_fence is not None and e.parent_execution_id is None:
            raise ValidationError("a fence guards a child's parent; a root has no parent")
        params = encode_new_execution(e)
        if await self._insert_execution(params, start=start, fence=checked_fence):
            if start:
                self._signal_work()
            return
        await self._explain_refused_insert(e, checked_fence)

    async def _explain_refused_insert(
        self, e: Execution, fence: tuple[str, int] | None
    ) -> None:
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
        if parent.root_execution_id != e.root_execution_id:
            raise ValidationError(
                f"parent {parent.id!r} belongs to tree {parent.root_execution_id!r}, "
                f"not to {e.root_execution_id!r}"
            )
        if parent.execution_depth + 1 != e.execution_depth:
            raise ValidationError(
                f"a child of {parent.id!r} (depth {parent.execution_depth}) has depth "
                f"{parent.execution_depth + 1}, not {e.execution_depth}"
            )
        if fence is not None and not _fence_holds(parent_row, fence):
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
        write = StatusWrite(
            execution_id=check_id(params.execution_id, "execution_id"),
            status=status,
            effect=StatusEffect.of(status),
            sources=_sources(status, params.expected_status),
            fence=check_fence(params.worker_id, params.epoch),
            error_message=check_optional_text(params.error_message, "error_message"),
            error_node_id=(
                None if params.error_node_id is None
                else check_id(params.error_node_id, "error_node_id")
            ),
            started_at=(
                None if params.started_at is None
                else check_datetime(params.started_at, "started_at")
            ),
            completed_at=(
                None if params.completed_at is None
                else check_datetime(params.completed_at, "completed_at")
            ),
            result_json=encode_json(params.result, "result"),
        )
        if await self._write_status(write):
            if write.effect is StatusEffect.REQUEUE:
                self._signal_work()
            return True
        row = await self._fetch_execution(write.execution_id)
        if row is None:
            return False
        if write.fence is not None and not _fence_holds(row, write.fence):
            raise ClaimLost(write.execution_id, *write.fence)
        raise InvalidTransition(write.execution_id, row["status"], status.value)

    async def start_execution(self, id: str) -> bool:
        check_id(id, "id")
        if await self._make_runnable(id):
            self._signal_work()
            return True
        row = await self._fetch_execution(id)
        if row is None:
            raise ExecutionNotFound(id)
        if row["status"] != ExecutionStatus.CREATED.value:
            raise InvalidTransition(id, row["status"], "started")
        return False

    async def get_root_executions(
        self,
        flow_id: str,
        limit: int = 50,
        after: PagePosition | None = None,
        *,
        owner_id: str | None = None,
    ) -> list[RootExecution]:
        check_id(flow_id, "flow_id")
        check_limit(limit)
        if owner_id is not None:
            check_id(owner_id, "owner_id")
        rows = await self._root_page(flow_id, limit, page_cursor(after), owner_id)
        return [
            RootExecution(execution=execution_from_row(row), levels=levels, total_nested=nested)
            for row, levels, nested in rows
        ]

    async def get_child_executions(self, parent_id: str) -> list[Execution]:
        return [execution_from_row(r) for r in await self._children(check_id(parent_id, "id"))]

    async def get_execution_tree(
        self, execution_id: str, *, max_nodes: int | None = None
    ) -> list[ExecutionTreeNode]:
        check_id(execution_id, "execution_id")
        bound = DEFAULT_TREE_NODES if max_nodes is None else check_limit(
            max_nodes, "max_nodes", MAX_TREE_NODES
        )
        return build_tree(await self._subtree(execution_id, bound))

    async def get_statuses(self, ids: Sequence[str]) -> dict[str, ExecutionStatus]:
        _check_sequence(ids, "get_statuses takes a sequence of ids")
        checked = [check_id(i, "id") for i in ids]
        if not checked:
            return {}
        return {i: ExecutionStatus(s) for i, s in await self._statuses(checked)}

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
        flows = _check_flow_ids(flow_ids)
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
    ) -> WorkBatch:
        check_id(worker_id, "worker_id")
        check_timeout_ms(timeout_ms)
        check_int_range(limit, "limit", 0, MAX_BATCH)
        flows = _check_flow_ids(flow_ids)
        if flows == []:
            limit = 0  # no flow can match: complete only
        _check_sequence(complete, "complete takes a sequence of Completion")
        if len(complete) > MAX_BATCH:
            raise ValidationError(f"complete takes at most {MAX_BATCH} completions at once")
        completions = [_check_completion(c) for c in complete]
        if len({c.execution_id for c in completions}) < len(completions):
            raise ValidationError("complete lists an execution more than once")
        if limit == 0 and not completions:
            return WorkBatch(started=[], completed=frozenset())
        rows, completed = await self._claim_and_start(
            worker_id, timeout_ms, limit, flows, completions
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
        _check_sequence(claims, "extend_claims takes a sequence of (execution_id, epoch) pairs")
        pairs: list[tuple[str, int | None]] = []
        for pair in claims:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ValidationError("extend_claims takes (execution_id, epoch) pairs")
            fence = check_fence(worker_id, pair[1])
            assert fence is not None
            pairs.append((check_id(pair[0], "execution_id"), fence[1]))
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

    async def expire_old_claims(self) -> int:
        return await self._expire_claims()

    # ------------------------------------------------------------ failures and recovery

    async def update_failure_info(
        self, execution_id: str, failure_count: int, reason: str
    ) -> bool:
        check_id(execution_id, "execution_id")
        check_int_range(failure_count, "failure_count", 0, MAX_FAILURES_LIMIT)
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
    ) -> Execution:
        fence = check_fence(worker_id, epoch)
        assert fence is not None
        write = RetryWrite(
            execution_id=check_id(execution_id, "execution_id"),
            worker_id=fence[0],
            epoch=fence[1],
            reason=check_text(reason, "reason"),
            delay_ms=check_int_range(delay_ms, "delay_ms", 0, MAX_BACKOFF_MS),
            count_failure=bool(count_failure),
            max_failures=(
                None if max_failures is None
                else check_int_range(max_failures, "max_failures", 1, MAX_FAILURES_LIMIT)
            ),
            error_node_id=(
                None if error_node_id is None else check_id(error_node_id, "error_node_id")
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
        if not _fence_holds(current, fence):
            raise ClaimLost(write.execution_id, *fence)
        raise InvalidTransition(write.execution_id, current["status"], "created")

    async def get_executions_needing_recovery(self, limit: int = 100) -> list[Execution]:
        return [execution_from_row(r) for r in await self._needing_recovery(check_limit(limit))]

    async def recover_executions(
        self,
        worker_id: str,
        *,
        max_failures: int = 5,
        backoff_base_ms: int = 1000,
        backoff_max_ms: int = 300_000,
        limit: int = 100,
    ) -> list[RecoveryRecord]:
        check_id(worker_id, "worker_id")
        policy = RecoveryPolicy(
            max_failures=check_int_range(max_failures, "max_failures", 1, MAX_FAILURES_LIMIT),
            backoff_base_ms=check_int_range(backoff_base_ms, "backoff_base_ms", 0, MAX_BACKOFF_MS),
            backoff_max_ms=check_int_range(backoff_max_ms, "backoff_max_ms", 0, MAX_BACKOFF_MS),
            limit=check_limit(limit),
        )
        records = [recovery_from_row(r) for r in await self._recover(worker_id, policy)]
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
        check_id(execution_id, "execution_id")
        check_id(worker_id, "worker_id")
        check_text(reason, "reason")
        if previous_status is not None:
            previous_status = check_status(previous_status, "previous_status").value
        if previous_worker_id is not None:
            check_id(previous_worker_id, "previous_worker_id")
        row = await self._insert_recovery(
            execution_id, worker_id, reason, previous_status, previous_worker_id
        )
        if row is None:
            raise ExecutionNotFound(execution_id)
        return recovery_from_row(row)

    async def get_recovery_history(self, execution_id: str) -> list[RecoveryRecord]:
        rows = await self._recovery_rows(check_id(execution_id, "execution_id"))
        return [recovery_from_row(r) for r in rows]

    async def try_acquire_recovery_lock(self, lock_id: int) -> bool:
        return await self._try_lock(check_int_range(lock_id, "lock_id", 0, (1 << 31) - 1))

    async def release_recovery_lock(self, lock_id: int) -> bool:
        return await self._unlock(check_int_range(lock_id, "lock_id", 0, (1 << 31) - 1))

    # ------------------------------------------------------------ operations

    async def purge_finished(self, before: datetime, *, limit: int = 1000) -> int:
        return await self._purge(check_datetime(before, "before"), check_limit(limit))

    async def get_stats(self) -> StoreStats:
        return await self._stats()


def _check_sequence(value: object, what: str) -> None:
    """One string, None or a number where a sequence belongs is a caller's mistake."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ValidationError(f"{what}, not {type(value).__name__}")


def _sources(target: ExecutionStatus, expected: object) -> list[str]:
    """The statuses a status write may start from: all legal ones, or just the expected one."""
    if expected is None:
        return sources_of(target)
    current = check_status(expected, "expected_status")
    if not can_transition(current, target):
        raise ValidationError(
            f"expected_status {current.value!r} can never move to {target.value!r}"
        )
    return [current.value]


def _check_flow_ids(flow_ids: Sequence[str] | None) -> list[str] | None:
    if flow_ids is None:
        return None
    _check_sequence(flow_ids, "flow_ids takes a sequence of flow ids")
    return [check_id(f, "flow_id") for f in flow_ids]


def _check_completion(completion: object) -> CompletionWrite:
    if not isinstance(completion, Completion):
        raise ValidationError(
            f"complete takes Completion objects, not {type(completion).__name__}"
        )
    return CompletionWrite(
        execution_id=check_id(completion.execution_id, "execution_id"),
        epoch=check_epoch(completion.epoch),
        result_json=encode_json(completion.result, "result"),
    )


def _fence_holds(row: Row, fence: tuple[str, int]) -> bool:
    return row["processing_worker_id"] == fence[0] and int(row["claim_epoch"]) == fence[1]
