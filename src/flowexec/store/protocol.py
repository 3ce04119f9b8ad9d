"""The port every backend implements: the API of the TypeScript PostgresExecutionStore in
snake_case, with its defects fixed (docs/architecture.md §9).

All methods are coroutines. Times come from the database clock and are timezone-aware UTC.
Unknown ids give `None` / `False` / `[]` where the TypeScript store returned those, and
`ExecutionNotFound` where a write needs the execution to exist. Bad input raises
`ValidationError` and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from flowexec.model import (
    JSON,
    Completion,
    Execution,
    ExecutionClaim,
    ExecutionStatus,
    ExecutionTreeNode,
    FlowQueueStats,
    RecoveryRecord,
    RootExecution,
    ScheduleSlot,
    StoreStats,
    UpdateExecutionStatusParams,
    WorkBatch,
)
from flowexec.policy import DEFAULT_LEADER_LEASE_S, DEFAULT_RECOVERY
from flowexec.store.event_log import EventLog
from flowexec.store.flows import FlowCounts
from flowexec.store.limits import MAX_BATCH
from flowexec.store.tokens import TokenStore
from flowexec.store.workers import WorkerRegistry


@runtime_checkable
class ExecutionStore(WorkerRegistry, EventLog, TokenStore, FlowCounts, Protocol):
    """Executions, their claims (leases with fencing epochs) and their recovery history."""

    @property
    def backend(self) -> str:
        """`postgres` or `sqlite`."""
        ...

    @property
    def table_prefix(self) -> str: ...

    @property
    def max_depth(self) -> int:
        """The deepest nesting `create` accepts (a root is depth 0)."""
        ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def migrate(self, *, target_version: int | None = None) -> list[str]:
        """Apply pending migrations (up to `target_version`) under a lock; returns their names."""
        ...

    # ------------------------------------------------------------ executions

    async def create(
        self,
        execution: Execution,
        *,
        start: bool = True,
        fence: tuple[str, int] | None = None,
    ) -> str:
        """Insert a new execution; runnable at once (or at its `available_at`, a delayed
        start, on the database clock) unless `start=False`. Returns its id, or the id of the
        flow's execution that already holds its `idempotency_key` (nothing is written then).

        The same id with the same content is a no-op; with other content `ExecutionExists`.
        A child's parent must exist, be in the same tree and be one level up. With `fence`
        (`worker_id`, `epoch`) the parent must be held by that claim, else `ClaimLost`.
        """
        ...

    async def create_many(
        self, executions: Sequence[Execution], *, start: bool = True
    ) -> set[str]:
        """Insert up to `MAX_CREATE_BATCH` new executions in one transaction, all or nothing;
        runnable at once unless `start=False`. Returns the ids this call inserted.

        Each execution is checked and treated as `create` treats it: an id stored with the
        same content is left as it is, with other content `ExecutionExists`. An id listed
        twice counts once with the same content; with other content it is a `ValidationError`.
        A child's parent may come in the same batch. Any error writes nothing of the batch.
        """
        ...

    async def get(self, id: str) -> Execution | None: ...

    async def get_by_idempotency_key(self, flow_id: str, key: str) -> Execution | None:
        """The flow's execution holding this idempotency key, if one exists."""
        ...

    async def delete(self, id: str) -> bool:
        """Remove the execution with its subtree, claims and recovery history, atomically."""
        ...

    async def update_execution_status(self, params: UpdateExecutionStatusParams) -> bool:
        """Move an execution along the lifecycle (docs/architecture.md §3).

        Returns False for an unknown id. Raises `InvalidTransition` for an illegal move (or
        when `expected_status` is given and the execution is not in it) and
        `ClaimLost` when fenced by a claim that is no longer current. Entering a terminal
        status releases the claim in the same transaction; entering `created` requeues it.
        """
        ...

    async def start_execution(self, id: str) -> bool:
        """Make a `created` execution that is not started, or waits for its delayed start or
        a retry's backoff, runnable at once; False if it already was."""
        ...

    async def get_root_executions(
        self,
        flow_id: str,
        limit: int = 50,
        after: datetime | RootExecution | tuple[datetime, str] | None = None,
        *,
        owner_id: str | None = None,
        status: ExecutionStatus | str | None = None,
    ) -> list[RootExecution]:
        """Roots of a flow (of one owner, in one status, when given), newest first,
        keyset-paginated on (created_at, id).

        `after` is a datetime as the TypeScript store takes (roots created before it), a
        `RootExecution` returned earlier, or its (created_at, id) pair.
        """
        ...

    async def get_roots_in_status(
        self,
        status: str,
        limit: int = 50,
        after: datetime | RootExecution | tuple[datetime, str] | None = None,
        *,
        flow_id: str | None = None,
    ) -> list[RootExecution]:
        """Roots in `status`, across flows or of `flow_id`, newest first, keyset-paginated on
        (created_at, id) as `get_root_executions` is."""
        ...

    async def get_child_executions(self, parent_id: str) -> list[Execution]: ...

    async def get_execution_tree(
        self, execution_id: str, *, max_nodes: int | None = None
    ) -> list[ExecutionTreeNode]:
        """The subtree under any execution, sorted by (level, id), at most `max_nodes`."""
        ...

    async def get_statuses(self, ids: Sequence[str]) -> dict[str, ExecutionStatus]:
        """Current status of each existing id, in one query (the worker's control poll)."""
        ...

    # ------------------------------------------------------------ claims

    async def claim_execution(
        self, execution_id: str, worker_id: str, timeout_ms: int
    ) -> ExecutionClaim | None:
        """Take one execution if it is claimable, in one statement; None otherwise."""
        ...

    async def claim_next(
        self,
        worker_id: str,
        timeout_ms: int,
        *,
        limit: int = 1,
        flow_ids: Sequence[str] | None = None,
    ) -> list[ExecutionClaim]:
        """Claim up to `limit` runnable executions, lowest `priority` first and oldest
        `available_at` first within a priority, in one trip."""
        ...

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
        """A worker's whole exchange with the queue in one transaction (one round trip, one
        commit): complete its returned runs, then claim and start the next ones.

        Each completion is fenced by `worker_id` and its epoch and moves `running` →
        `completed` with its result, releasing the claim; one that cannot be written (lease
        lost, execution paused, stopped or gone) changes nothing and is left out of
        `completed` (`update_execution_status` says why). Then up to `limit` runnable
        executions, plus one for each completion written, are claimed as by `claim_next` and
        moved to `running`. `limit` may be 0 (only complete).

        `running_limits` (`{flow_id: max_running}`): the statement itself starts an execution
        of such a flow only while fewer than that many of the flow are `running`, counted
        across every worker (on PostgreSQL under a per-flow transaction lock, so concurrent
        claimers cannot both take the last place).
        """
        ...

    async def fill_schedule_slot(
        self, schedule_id: str, slot_at: datetime, execution: Execution,
        *, leader: int | None = None,
    ) -> bool:
        """Create the root `execution` for a cron slot, unless the slot was already filled:
        at most one execution per `(schedule_id, slot_at)`, guaranteed by the database.
        True if this call filled it. `leader`: as for `expire_old_claims`."""
        ...

    async def get_last_slots(self, schedule_ids: Sequence[str]) -> dict[str, ScheduleSlot]:
        """The latest filled slot of each schedule that has one."""
        ...

    async def release_execution(
        self, execution_id: str, worker_id: str, *, epoch: int | None = None
    ) -> bool:
        """Give back a held claim; the execution is claimable at once. False if not held."""
        ...

    async def extend_claim(
        self, execution_id: str, worker_id: str, timeout_ms: int, *, epoch: int | None = None
    ) -> bool:
        """Heartbeat: only the holder of a live lease can extend it."""
        ...

    async def extend_claims(
        self, worker_id: str, claims: Sequence[tuple[str, int]], timeout_ms: int
    ) -> set[str]:
        """Heartbeat many (execution_id, epoch) claims at once; returns the ids still held."""
        ...

    async def get_active_claims(self, *, worker_id: str | None = None) -> list[ExecutionClaim]:
        """Live leases (status active and not past `expires_at`)."""
        ...

    async def get_claim_for_execution(self, execution_id: str) -> ExecutionClaim | None: ...

    async def expire_old_claims(self, *, leader: int | None = None) -> int:
        """Mark lapsed leases expired. `leader` (a lock id): a write the leader makes as
        leader, which changes nothing unless this store still holds that lock under the term
        it took it with (a deposed leader's late write is refused; docs/architecture.md §6)."""
        ...

    # ------------------------------------------------------------ failures and recovery

    async def update_failure_info(
        self, execution_id: str, failure_count: int, reason: str
    ) -> bool:
        """The TypeScript store's absolute write; flowexec itself only increments in SQL."""
        ...

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
        """Fenced: end this attempt and put the execution back in the queue after `delay_ms`.

        With `count_failure`, `failure_count` goes up by one in SQL; once it reaches
        `max_failures` the execution is `failed` instead. The claim is released in the
        same transaction, which also logs `flow:retrying` (or `flow:failed`) with
        `event_data` added to its data. With `suspend` (a durable sleep or a wait for
        children) no failure is counted and the event is `flow:suspended`.
        """
        ...

    async def get_executions_needing_recovery(
        self, limit: int = DEFAULT_RECOVERY.batch_size
    ) -> list[Execution]:
        """`running`/`paused` executions with no live lease. Never queued ones."""
        ...

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
        """One sweep in one transaction: expire claims, then requeue or fail what died.
        `leader`: as for `expire_old_claims` (a deposed leader recovers nothing)."""
        ...

    async def record_recovery(
        self,
        execution_id: str,
        worker_id: str,
        reason: str,
        previous_status: str | None = None,
        previous_worker_id: str | None = None,
    ) -> RecoveryRecord: ...

    async def get_recovery_history(self, execution_id: str) -> list[RecoveryRecord]: ...

    async def try_acquire_recovery_lock(
        self, lock_id: int, *, lease_s: float = DEFAULT_LEADER_LEASE_S
    ) -> bool:
        """Namespaced per table prefix; held until released or the holder dies. On
        PostgreSQL a lease row with a fencing term: each call renews it for `lease_s` (the
        database clock), after which another store may take it with a higher term (§6)."""
        ...

    async def release_recovery_lock(self, lock_id: int) -> bool: ...

    # ------------------------------------------------------------ operations

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when new work may be runnable, or after `timeout_s` (the polling fallback)."""
        ...

    async def purge_finished(
        self, before: datetime, *, limit: int = MAX_BATCH, statuses: Sequence[str] | None = None
    ) -> int:
        """Retention: delete up to `limit` whole trees finished before `before`; count of roots.

        `statuses` narrows it to roots that ended so (finished statuses only); a tree with
        an unfinished execution is never removed."""
        ...

    async def count_purgeable(
        self, before: datetime, *, statuses: Sequence[str] | None = None
    ) -> int:
        """How many roots `purge_finished` would remove now, all batches together."""
        ...

    async def get_stats(self) -> StoreStats: ...

    async def get_queue_stats(self) -> list[FlowQueueStats]:
        """Per flow with unfinished work: queued (runnable now), delayed, running and paused
        counts and the oldest runnable `available_at`, on the database clock. Reads only
        unfinished executions, through the queue's and recovery's partial indexes."""
        ...

    async def now(self) -> datetime:
        """The database clock."""
        ...
