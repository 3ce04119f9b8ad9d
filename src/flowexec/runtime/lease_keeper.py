"""The worker's leases: heartbeats renew them, a watchdog stops the runs whose lease ran out.

A run may only work while it holds its lease (its claim in the store, docs/architecture.md
§4). The heartbeat renews every lease held, and the worker's registry entry, in one statement
(`keep_worker_alive`, or `extend_claims` without a registry entry); a lease it does not get
back is lost and its run is aborted at once. The watchdog does not ask the store: each run's
`LeaseTerm` is counted from before the heartbeat that last renewed it was sent, so it never
ends after the database's own expiry, and the run stops before another worker can take it
over, whatever the heartbeat call is doing (failing, or hanging on a cut network).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Protocol

from flowexec.runtime.control import AbortReason
from flowexec.runtime.logs import BoundLogger
from flowexec.runtime.observer import NO_OBSERVER, WorkerObserver
from flowexec.runtime.presence import WorkerPresence
from flowexec.runtime.tasks import every
from flowexec.store.protocol import ExecutionStore


class LeaseTerm:
    """Local estimate of when one run's lease runs out unless a heartbeat renews it."""

    __slots__ = ("_ends_at", "_length_s")

    def __init__(self, length_s: float) -> None:
        self._length_s = length_s
        self._ends_at = time.monotonic() + length_s

    def renew(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` (monotonic) renewed the lease."""
        self._ends_at = sent_at + self._length_s

    @property
    def ran_out(self) -> bool:
        return time.monotonic() >= self._ends_at


class LeasedRun(Protocol):
    """What the lease keeper needs of a run."""

    @property
    def execution_id(self) -> str: ...

    @property
    def epoch(self) -> int: ...

    @property
    def lease_term(self) -> LeaseTerm: ...

    @property
    def holds_lease(self) -> bool: ...

    def abort(self, reason: AbortReason, detail: str = "") -> None: ...


class LeaseKeeper:
    def __init__(
        self,
        store: ExecutionStore,
        *,
        worker_id: str,
        lease_ms: int,
        heartbeat_interval_s: float,
        watchdog_interval_s: float,
        runs: Callable[[], Collection[LeasedRun]],
        log: BoundLogger,
        observer: WorkerObserver = NO_OBSERVER,
        presence: WorkerPresence | None = None,
    ) -> None:
        """With `presence`, the heartbeat also keeps the worker's registry entry alive."""
        self._store = store
        self._observer = observer
        self._worker_id = worker_id
        self._lease_s = lease_ms / 1000
        self._lease_ms = lease_ms
        self._heartbeat_interval_s = heartbeat_interval_s
        self._watchdog_interval_s = watchdog_interval_s
        self._runs = runs
        self._log = log
        self._presence = presence

    def new_term(self) -> LeaseTerm:
        """The term of a lease the store granted just now."""
        return LeaseTerm(self._lease_s)

    async def run(self) -> None:
        """Heartbeat and watchdog, until cancelled."""
        async with asyncio.TaskGroup() as loops:
            loops.create_task(
                every(self._heartbeat_interval_s, self.heartbeat, name="heartbeat", log=self._log)
            )
            loops.create_task(
                every(
                    self._watchdog_interval_s,
                    self.abort_runs_past_their_lease,
                    name="lease watchdog",
                    log=self._log,
                )
            )

    async def heartbeat(self) -> None:
        """Renew every lease held (and the worker's presence) in one statement; a lease left
        out is lost: abort its run."""
        runs = [run for run in self._runs() if run.holds_lease]
        if not runs and self._presence is None:
            return
        sent_at = time.monotonic()
        claims = [(r.execution_id, r.epoch) for r in runs]
        renewing = (
            self._store.extend_claims(self._worker_id, claims, self._lease_ms)
            if self._presence is None
            else self._presence.keep_alive(claims, self._lease_ms)
        )
        # A heartbeat that hangs (a cut network, a pool waiting for a connection) must not
        # hold the next one up for longer than a lease; the watchdog stops the runs meanwhile.
        renewed = await asyncio.wait_for(renewing, self._lease_s)
        self._observer.leases_renewed(sent_at)
        for run in runs:
            if run.execution_id in renewed:
                run.lease_term.renew(sent_at)
            elif run.holds_lease:
                run.abort(AbortReason.LOST, "heartbeat refused: the lease was released or taken")

    async def abort_runs_past_their_lease(self) -> None:
        """Stop every run whose lease ran out unrenewed, without asking the store."""
        for run in list(self._runs()):
            if run.holds_lease and run.lease_term.ran_out:
                run.abort(AbortReason.LOST, "the lease ran out before a heartbeat renewed it")
