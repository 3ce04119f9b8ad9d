"""The primitives a SQL backend supplies: one statement or one transaction each, in its own SQL.

`SqlExecutionStore` (store/base.py) turns them into the `ExecutionStore` contract; the checks,
row mapping and error diagnosis happen there once, for every backend.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, ClassVar, Protocol

from flowexec.closing import AsyncClosing
from flowexec.model import DEFAULT_MAX_DEPTH, EventBatch, check_int_range, check_table_prefix
from flowexec.policy import RecoveryPolicy
from flowexec.store.batches import CreateBatch
from flowexec.store.checks import check_lock_id
from flowexec.store.commands import (
    ClaimAndStart,
    Fence,
    RecoveryRecordWrite,
    RetryWrite,
    RootPageQuery,
    StatusPageQuery,
    StatusWrite,
)
from flowexec.store.limits import MAX_DEPTH_LIMIT
from flowexec.store.rows import Row


class RecoveryLocks(Protocol):
    """Where a backend holds its recovery locks (`try_acquire_recovery_lock`)."""

    async def try_lock(self, lock_id: int, lease_s: float) -> bool: ...

    async def unlock(self, lock_id: int) -> bool: ...

    def as_leader(self, lock_id: int) -> AbstractAsyncContextManager[bool]:
        """Whether this store still leads under the lock it took: the body's writes happen
        only if so, and (on PostgreSQL) in a transaction no new leader can overtake."""
        ...

    async def close(self) -> None: ...


class SqlPrimitives(AsyncClosing):
    """The backend half of a SQL store, and the little state both backends keep alike."""

    backend: ClassVar[str]
    _locks: RecoveryLocks

    def __init__(self, *, table_prefix: str, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.table_prefix = check_table_prefix(table_prefix)
        self.max_depth = check_int_range(max_depth, "max_depth", 1, MAX_DEPTH_LIMIT)
        self._statements: dict[str, str] = {}
        self._work_ready = asyncio.Event()

    def _sql(self, template: str) -> str:
        """A statement template with `{p}` filled in, once per template and store.

        The prefix is validated as [a-z_][a-z0-9_]*; values always travel as parameters.
        """
        statement = self._statements.get(template)
        if statement is None:
            statement = self._statements[template] = template.replace("{p}", self.table_prefix)
        return statement

    @asynccontextmanager
    async def _leading(self, lock_id: int | None) -> AsyncIterator[bool]:
        """For a write a leader makes as leader (`leader=`): True inside if this store still
        holds `lock_id` under its term; without a lock id the write is not fenced."""
        if lock_id is None:
            yield True
            return
        async with self._locks.as_leader(check_lock_id(lock_id)) as leading:
            yield leading

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

    @abstractmethod
    async def migrate(self, *, target_version: int | None = None) -> list[str]: ...

    @abstractmethod
    async def now(self) -> datetime: ...

    @abstractmethod
    async def wait_for_work(self, timeout_s: float) -> None: ...

    # ------------------------------------------------------------ executions

    @abstractmethod
    async def _insert_execution(
        self, params: dict[str, Any], *, start: bool, fence: Fence | None
    ) -> bool:
        """Insert if absent and the parent (if any) matches; True if a row was inserted."""

    @abstractmethod
    async def _insert_executions(self, batch: CreateBatch, *, start: bool) -> set[str]:
        """One transaction: insert what is absent (children whose parent is in the batch or
        stored where they say), then let `batch.settle` judge the rest by their stored rows
        before committing; the ids inserted."""

    @abstractmethod
    async def _fetch_execution(self, id: str) -> Row | None:
        """The row, including the internal `claim_epoch`."""

    @abstractmethod
    async def _fetch_by_key(self, flow_id: str, key: str) -> Row | None:
        """The row of the flow's execution holding this idempotency key, if any."""

    @abstractmethod
    async def _delete_tree(self, id: str) -> bool: ...

    @abstractmethod
    async def _write_status(self, write: StatusWrite) -> bool: ...

    @abstractmethod
    async def _make_runnable(self, id: str) -> bool: ...

    @abstractmethod
    async def _root_page(self, query: RootPageQuery) -> list[Row]:
        """Execution rows with `levels` and `total_nested`, newest first."""

    @abstractmethod
    async def _roots_in_status(self, query: StatusPageQuery) -> list[Row]:
        """As `_root_page`, for roots in one status (store/status_listing.py)."""

    @abstractmethod
    async def _children(self, parent_id: str) -> list[Row]: ...

    @abstractmethod
    async def _subtree(self, id: str, max_nodes: int) -> list[Row]:
        """Execution rows with their `level`, sorted by (level, id)."""

    @abstractmethod
    async def _statuses(self, ids: list[str]) -> list[Row]:
        """(`id`, `status`) rows of the executions that exist."""

    # ------------------------------------------------------------ claims

    @abstractmethod
    async def _claim_one(self, execution_id: str, worker_id: str, timeout_ms: int) -> Row | None:
        ...

    @abstractmethod
    async def _claim_batch(
        self, worker_id: str, timeout_ms: int, limit: int, flow_ids: list[str] | None
    ) -> list[Row]: ...

    @abstractmethod
    async def _claim_and_start(self, command: ClaimAndStart) -> tuple[list[Row], set[str]]:
        """One transaction: the started executions' rows and the completed ids."""

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

    # ------------------------------------------------------------ failures and recovery

    @abstractmethod
    async def _set_failure_info(self, execution_id: str, failure_count: int, reason: str) -> bool:
        ...

    @abstractmethod
    async def _retry(self, write: RetryWrite) -> Row | None: ...

    @abstractmethod
    async def _needing_recovery(self, limit: int) -> list[Row]: ...

    @abstractmethod
    async def _recover(self, worker_id: str, policy: RecoveryPolicy) -> list[Row]:
        """One sweep in one transaction (store/recovery.py): the recovery records written."""

    @abstractmethod
    async def _insert_recovery(self, write: RecoveryRecordWrite) -> Row | None: ...

    @abstractmethod
    async def _recovery_rows(self, execution_id: str) -> list[Row]: ...

    # ------------------------------------------------------------ the event log

    @abstractmethod
    async def _event_rows(
        self, execution_id: str, from_index: int, limit: int, types: list[str] | None
    ) -> list[Row]:
        """Events with `idx >= from_index`, by index, at most `limit`."""

    @abstractmethod
    async def _append_events(self, worker_id: str, batches: list[EventBatch]) -> set[str]:
        """One transaction: each batch appended if its fence holds; the ids appended."""

    @abstractmethod
    async def wait_for_events(self, execution_id: str, timeout_s: float) -> None: ...

    @abstractmethod
    async def _checkpoint_rows(self, execution_id: str) -> list[Row]:
        """(`node_id`, `result`) rows of the execution's recorded nodes (§11)."""

    # ------------------------------------------------------------ operations

    @abstractmethod
    async def _purge(self, before: datetime, limit: int, statuses: list[str]) -> int: ...

    @abstractmethod
    async def _count_purgeable(self, before: datetime, statuses: list[str]) -> int: ...

    @abstractmethod
    async def _stats_rows(self) -> tuple[list[Row], Row]:
        """The counts by status, and the one row of the other figures."""

    @abstractmethod
    async def _queue_stats_rows(self) -> list[Row]:
        """One statement (`QUEUE_STATS` in the backend's queue_stats.py): per flow, the
        counts and the oldest runnable `available_at`, with the database clock as
        `measured_at`, ordered by flow id."""
