"""The recovery loop: one elected sweeper per installation puts dead workers' runs back.

Every worker process runs a `RecoveryService`; the store's recovery lock elects the one that
sweeps. The leader keeps the lock between sweeps; when it dies the database frees the lock
and another instance takes it at its next tick, so a takeover costs at most one interval.
The sweep itself is the store's `recover_executions`: one transaction per batch that
increments failure counts in SQL, so two sweepers can never double-count
(docs/architecture.md §6).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from flowexec.errors import StoreUnavailable
from flowexec.model import RecoveryReason, RecoveryRecord, check_id
from flowexec.policy import LEADER_LEASE_INTERVALS
from flowexec.runtime.observer import NO_OBSERVER, WorkerObserver
from flowexec.runtime.settings import RecoverySettings
from flowexec.store.protocol import ExecutionStore

log = logging.getLogger("flowexec.recovery")


@dataclass(frozen=True, slots=True)
class SweepReport:
    expired: int
    requeued: int
    failed: int
    duration_s: float
    dead_workers: int = 0
    """Workers removed from the registry because their presence expired."""

    @property
    def recovered(self) -> int:
        return self.requeued + self.failed


class RecoveryService:
    """Sweeps for executions whose worker died, when this instance holds the lock."""

    def __init__(
        self,
        store: ExecutionStore,
        *,
        worker_id: str,
        settings: RecoverySettings | None = None,
        observer: WorkerObserver = NO_OBSERVER,
        **keywords: Any,
    ) -> None:
        """`settings`, or the defaults, with any keyword of `RecoverySettings.of` applied."""
        self.store = store
        self._observer = observer
        self.worker_id = check_id(worker_id, "worker_id")
        self.settings = RecoverySettings.of(settings, **keywords)
        self.is_leader = False
        self._stopping = asyncio.Event()

    @property
    def lock_id(self) -> int:
        return self.settings.lock_id

    async def sweep_once(self) -> SweepReport | None:
        """One sweep if this instance is (or becomes) the leader; None otherwise."""
        self.is_leader = await self.store.try_acquire_recovery_lock(
            self.lock_id, lease_s=LEADER_LEASE_INTERVALS * self.settings.interval_s
        )
        if not self.is_leader:
            return None
        started = time.monotonic()
        expired = await self.store.expire_old_claims(leader=self.lock_id)
        dead_workers = await self.store.remove_dead_workers(leader=self.lock_id)
        if dead_workers:
            log.warning(
                "removed %d dead workers from the registry: %s",
                len(dead_workers), ", ".join(dead_workers),
                extra={"worker_id": self.worker_id},
            )
        requeued = failed = 0
        recovered: list[RecoveryRecord] = []
        policy = self.settings.policy
        for _ in range(self.settings.max_batches_per_sweep):
            records = await self.store.recover_executions(
                self.worker_id,
                max_failures=policy.max_failures,
                backoff_base_ms=policy.backoff.base_ms,
                backoff_max_ms=policy.backoff.max_ms,
                limit=policy.batch_size,
                leader=self.lock_id,
            )
            gave_up = sum(
                r.recovery_reason == RecoveryReason.MAX_FAILURES_EXCEEDED for r in records
            )
            failed += gave_up
            requeued += len(records) - gave_up
            recovered += records
            for record in records:
                log.info(
                    "recovered execution %s (%s) from worker %s",
                    record.execution_id,
                    record.recovery_reason,
                    record.previous_worker_id,
                    extra={"execution_id": record.execution_id, "worker_id": self.worker_id},
                )
            if len(records) < policy.batch_size:
                break
        report = SweepReport(
            expired, requeued, failed, time.monotonic() - started, len(dead_workers)
        )
        if report.expired or report.recovered:
            log.info(
                "recovery sweep: expired=%d recovered=%d requeued=%d failed=%d duration=%.3fs",
                report.expired, report.recovered, report.requeued, report.failed,
                report.duration_s,
                extra={"worker_id": self.worker_id},
            )
        await self._observer.swept(report, recovered)
        return report

    async def run(self) -> None:
        """Sweep every `interval_s` until `stop()`; a database outage is logged and outlived."""
        self._stopping.clear()
        try:
            while not self._stopping.is_set():
                try:
                    await self.sweep_once()
                except StoreUnavailable as exc:
                    self.is_leader = False
                    log.warning("recovery sweep skipped: %s", exc)
                except Exception as exc:
                    # Anything else (e.g. a database refusing writes for a while, read-only
                    # after a failover) must not end recovery for the life of the process.
                    self.is_leader = False
                    log.exception(
                        "recovery sweep failed, trying again in %g s: %s",
                        self.settings.interval_s, exc,
                    )
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.settings.interval_s)
        finally:
            # Whatever `is_leader` says: a sweep that failed after taking the lock leaves it
            # held by this store, and the store may outlive the service (a worker given a
            # store it does not own). Releasing a lock this store does not hold is a no-op.
            self.is_leader = False
            with suppress(StoreUnavailable):  # else the session is gone, and its lock with it
                await self.store.release_recovery_lock(self.lock_id)

    def stop(self) -> None:
        self._stopping.set()
