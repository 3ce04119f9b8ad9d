"""`Worker`: claims executions of its app's flows and runs them, durably (docs/architecture.md
§4, §5, §7).

The worker composes one loop per job around one store:
- claiming (here): `claim_and_start` in batches up to the free capacity and within the flows'
  `max_running`, completing in the same transaction the runs that returned since the last
  one; sleeps on `wait_for_work` (LISTEN/NOTIFY on Postgres, polling on SQLite) or until a
  run returns or ends;
- leases (`LeaseKeeper`): heartbeats, and a watchdog for leases that ran out;
- control (`ControlPoller`): stop and pause arrive within a poll;
- recovery (`RecoveryService`, optional): the elected sweeper that requeues dead workers' runs;
- scheduling (`Scheduler`, when the app declares schedules): the elected filler of cron slots;
- events (`EventBuffer`): writes the runs' buffered events, many executions per statement.
Shutdown (SIGTERM/SIGINT or `stop()`) stops claiming, gives runs `shutdown_grace_s` to finish,
then puts the rest back in the queue without counting a failure; a second signal exits at once.
When `run` returns, every task the worker started has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import time
from collections.abc import Awaitable
from typing import Any

from flowexec.errors import ConfigError, StoreUnavailable
from flowexec.model import DEFAULT_TABLE_PREFIX, StartedExecution, check_id
from flowexec.runtime.completions import CompletionQueue
from flowexec.runtime.control import AbortReason
from flowexec.runtime.control_poller import ControlPoller
from flowexec.runtime.event_buffer import EventBuffer
from flowexec.runtime.flows import FlowRegistry
from flowexec.runtime.lease_keeper import LeaseKeeper
from flowexec.runtime.logs import bound
from flowexec.runtime.observer import NO_OBSERVER, WorkerObserver
from flowexec.runtime.presence import WorkerPresence
from flowexec.runtime.recovery import RecoveryService
from flowexec.runtime.run import ExecutionRun
from flowexec.runtime.scheduler import Scheduler
from flowexec.runtime.settings import WORKER_KEYWORDS, RunSettings, WorkerSettings
from flowexec.runtime.signals import stop_signals_to, why_not_route_signals
from flowexec.runtime.stores import use_store
from flowexec.runtime.tasks import end_tasks, wait_first
from flowexec.store.protocol import ExecutionStore

DEFAULT_POLL_INTERVAL_S = {"postgres": 1.0, "sqlite": 0.25}
"""Postgres wakes on NOTIFY, so its poll only covers lost notifications and retry delays."""
FALLBACK_POLL_INTERVAL_S = 0.5
"""The poll of a backend without an entry above."""
GIVE_BACK_TIMEOUT_S = 10.0
"""How long runs and the recovery service get to write their last words at shutdown."""
FORCED_EXIT_TIMEOUT_S = 1.0
"""The same after a second signal (or `stop(force=True)`)."""
DRAIN_CHECK_S = 0.25
"""How often the drain looks again whether every run left is paused."""
CLAIM_RETRY_FIRST_S = 0.1
CLAIM_RETRY_MAX_S = 1.0
"""A failed claim is tried again after a pause that doubles from the first to the max: at most
a second, so that a worker claims again within a second or two after an outage."""


def default_worker_id(role: str | None = None) -> str:
    """Unique per process and readable in `claims` and recovery history: `[role-]host-pid-…`."""
    host = socket.gethostname()[:64] or "host"
    prefix = f"{role}-" if role else ""
    return f"{prefix}{host}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    def __init__(
        self,
        app: FlowRegistry,
        store_or_url: ExecutionStore | str | None = None,
        *,
        settings: WorkerSettings | None = None,
        worker_id: str | None = None,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        observer: WorkerObserver = NO_OBSERVER,
        **keywords: Any,
    ) -> None:
        """`settings`, or the defaults, with any `WorkerSettings` keyword applied (and
        `retry_backoff_base_ms`, `retry_backoff_max_ms`, `recovery_max_failures`); every
        other keyword is an option of the store the worker opens from a URL. `observer`
        hears of claims, run outcomes, heartbeats and sweeps (e.g. `FlowexecMetrics`)."""
        if not isinstance(app, FlowRegistry):
            raise ConfigError(f"Worker needs an App, not {type(app).__name__}")
        if not app.flow_ids:
            raise ConfigError("the app registers no flows: a worker would have nothing to run")
        self.app = app
        self.worker_id = default_worker_id() if worker_id is None else check_id(
            worker_id, "worker_id"
        )
        self.settings = WorkerSettings.of(
            settings, **{k: v for k, v in keywords.items() if k in WORKER_KEYWORDS}
        )
        self._store_options = {k: v for k, v in keywords.items() if k not in WORKER_KEYWORDS}
        self._store_or_url = store_or_url
        self._table_prefix = table_prefix
        self._observer = observer
        self.log = bound("flowexec.worker", worker_id=self.worker_id)

        self._runs: dict[tuple[str, int], ExecutionRun] = {}
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._completions = CompletionQueue(on_submit=self._slot_freed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: ExecutionStore | None = None
        self._events: EventBuffer | None = None
        self._ran = False
        self._launched = 0

    # ------------------------------------------------------------ public

    @property
    def active_runs(self) -> int:
        return len(self._runs)

    @property
    def store(self) -> ExecutionStore:
        if self._store is None:
            raise ConfigError("the worker has not opened its store yet (call run())")
        return self._store

    def stop(self, *, force: bool = False) -> None:
        """Begin a graceful shutdown (`force`: skip the grace period). Safe from any thread."""
        loop = self._loop
        if loop is not None and loop.is_running() and not _inside(loop):
            loop.call_soon_threadsafe(self._request_stop, force)
        else:
            self._request_stop(force)

    async def run(self) -> None:
        """Run until `stop()` or a shutdown signal; returns after a graceful shutdown."""
        if self._ran:
            raise ConfigError("a Worker runs once; create a new one")
        self._ran = True
        self._loop = asyncio.get_running_loop()
        store, owned = await use_store(
            self._store_or_url, table_prefix=self._table_prefix, **self._store_options
        )
        self._store = store
        try:
            await self._run_on(store)
        finally:
            if owned:
                await store.close()
            self.log.info("worker stopped")

    # ------------------------------------------------------------ the loops

    async def _run_on(self, store: ExecutionStore) -> None:
        settings = self.settings
        presence = WorkerPresence(
            store,
            worker_id=self.worker_id,
            flow_ids=self.app.flow_ids,
            settings=settings,
            log=self.log,
        )
        await presence.register()
        leases = LeaseKeeper(
            store,
            worker_id=self.worker_id,
            lease_ms=settings.claim_timeout_ms,
            heartbeat_interval_s=settings.heartbeat_interval_ms / 1000,
            watchdog_interval_s=settings.control_interval_s,
            runs=self._runs.values,
            log=self.log,
            observer=self._observer,
            presence=presence,
        )
        controls = ControlPoller(
            store, interval_s=settings.control_interval_s, runs=self._runs.values, log=self.log
        )
        events = self._events = EventBuffer(store, worker_id=self.worker_id, log=self.log)
        loops = [asyncio.create_task(leases.run()), asyncio.create_task(controls.run())]
        flushing = [asyncio.create_task(events.run())]
        recovery_settings = settings.recovery_settings
        recovery = (
            None
            if recovery_settings is None
            else RecoveryService(
                store, worker_id=self.worker_id, settings=recovery_settings,
                observer=self._observer,
            )
        )
        scheduler = (
            Scheduler(store, self.app.schedules, worker_id=self.worker_id)
            if self.app.schedules
            else None
        )
        # Recovery and scheduling are stopped, not cancelled, so that they give their locks
        # back.
        sweeping = [] if recovery is None else [asyncio.create_task(recovery.run())]
        if scheduler is not None:
            sweeping.append(asyncio.create_task(scheduler.run()))
        self.log.info(
            "worker started: flows %s, concurrency %d, backend %s",
            ", ".join(self.app.flow_ids), settings.concurrency, store.backend,
        )
        with self._signals_routed():
            try:
                await self._claim_and_drain(store, leases)
            finally:
                if recovery is not None:
                    recovery.stop()
                if scheduler is not None:
                    scheduler.stop()
                await end_tasks(loops, grace_s=0)
                await end_tasks(sweeping, grace_s=GIVE_BACK_TIMEOUT_S)
                await end_tasks(list(self._tasks.values()), grace_s=0)
                await end_tasks(flushing, grace_s=0)
                await self._last_flush(events)
                await presence.leave()

    async def _last_flush(self, events: EventBuffer) -> None:
        """What the runs recorded last; a store that fails now loses only these events."""
        try:
            await asyncio.wait_for(events.flush(), GIVE_BACK_TIMEOUT_S)
        except Exception as exc:
            self.log.warning("the last run events were not written: %s", exc)

    async def _claim_and_drain(self, store: ExecutionStore, leases: LeaseKeeper) -> None:
        run_settings = RunSettings(
            max_depth=store.max_depth,
            retry_backoff=self.settings.retry_backoff,
            rng=random.Random(),
        )
        poll_s = self.settings.poll_interval_s or DEFAULT_POLL_INTERVAL_S.get(
            store.backend, FALLBACK_POLL_INTERVAL_S
        )
        try:
            await self._claim_loop(store, leases, run_settings, poll_s)
        except BaseException:
            self._request_stop(True)  # cancelled: give the runs back, quickly
            raise
        finally:
            self._completions.close()
            await self._drain()

    async def _claim_loop(
        self,
        store: ExecutionStore,
        leases: LeaseKeeper,
        run_settings: RunSettings,
        poll_s: float,
    ) -> None:
        retry_s = CLAIM_RETRY_FIRST_S
        while not self._stopping.is_set():
            # Runs whose completion waits still count here; each one written frees its slot
            # inside the statement.
            free = min(max(self.settings.concurrency - len(self._runs), 0), self._runs_left())
            if free > 0 or len(self._completions):
                taken = self._completions.take()
                if free + len(taken) > self._runs_left():
                    # Each completion written starts one more run: near `max_runs`, the runs
                    # write their own outcomes instead.
                    CompletionQueue.settle(taken, ())
                    taken = []
                try:
                    batch = await store.claim_and_start(
                        self.worker_id,
                        self.settings.claim_timeout_ms,
                        limit=free,
                        flow_ids=self.app.flow_ids,
                        complete=[completion for completion, _ in taken],
                        running_limits=self.app.running_limits,
                    )
                except Exception as exc:
                    CompletionQueue.settle(taken, ())  # those runs write their own outcome
                    self.log.warning(
                        "claiming failed, retrying in %.1f s: %s", retry_s, exc,
                        exc_info=not isinstance(exc, StoreUnavailable),
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), retry_s)
                    retry_s = min(retry_s * 2, CLAIM_RETRY_MAX_S)
                    continue
                retry_s = CLAIM_RETRY_FIRST_S
                CompletionQueue.settle(taken, batch.completed)
                if batch.started:
                    self._observer.claimed(batch.started)
                for started in batch.started:
                    self._launch(store, started, leases, run_settings)
                if self._runs_left() == 0:
                    self.log.info("recycling: %d runs started, the limit; stopping", self._launched)
                    self._request_stop(False)
                    continue
                if batch.started and len(batch.started) == free + len(batch.completed):
                    continue  # there may be more
            await self._wait_for_work(store, poll_s if free > 0 else None)

    def _runs_left(self) -> int:
        """How many more runs `max_runs` lets this worker start."""
        limit = self.settings.max_runs
        return self.settings.concurrency if limit is None else max(limit - self._launched, 0)

    def _launch(
        self,
        store: ExecutionStore,
        started: StartedExecution,
        leases: LeaseKeeper,
        run_settings: RunSettings,
    ) -> None:
        run = ExecutionRun(
            app=self.app,
            store=store,
            started=started,
            completions=self._completions,
            lease_term=leases.new_term(),
            settings=run_settings,
            log=self.log,
            events=self._events,
        )
        if self._stopping.is_set():
            run.abort(AbortReason.SHUTDOWN)  # claimed while stopping: give it straight back
        key = (run.execution_id, run.epoch)
        self._launched += 1
        self._runs[key] = run
        task = asyncio.create_task(run.execute(), name=f"flowexec-run:{run.execution_id}")
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._forget(key))

    def _forget(self, key: tuple[str, int]) -> None:
        run = self._runs.pop(key, None)
        self._tasks.pop(key, None)
        if run is not None:
            self._observer.run_ended(run.flow_id, run.settled, time.monotonic() - run.began_at)
        self._slot_freed.set()

    async def _wait_for_work(self, store: ExecutionStore, poll_s: float | None) -> None:
        """Until new work may be there (or `poll_s` passed), a run ended, or a stop."""
        waits: list[Awaitable[Any]] = [self._stopping.wait(), self._slot_freed.wait()]
        if poll_s is not None:
            waits.append(store.wait_for_work(poll_s))
        done = await wait_first(*waits)
        self._slot_freed.clear()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                self.log.warning("waiting for work failed: %s", task.exception())

    # ------------------------------------------------------------ shutdown

    def _request_stop(self, force: bool) -> None:
        if force:
            self._forced.set()
        self._stopping.set()

    def _signals_routed(self) -> contextlib.AbstractContextManager[None]:
        if not self.settings.install_signal_handlers:
            return contextlib.nullcontext()
        reason = why_not_route_signals()
        if reason is not None:
            self.log.info("installing no SIGINT/SIGTERM handlers: %s; stop the worker with "
                          "worker.stop()", reason)
            return contextlib.nullcontext()
        return stop_signals_to(self._on_signal)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            self.log.warning("%s again: exiting at once", sig.name)
            self._request_stop(True)
            return
        self.log.info(
            "%s: shutting down, giving %d runs up to %g s (send it again to exit at once)",
            sig.name, len(self._runs), self.settings.shutdown_grace_s,
        )
        self._request_stop(False)

    async def _drain(self) -> None:
        """Let runs finish within the grace period, then give the rest back to the queue."""
        assert self._loop is not None
        deadline = self._loop.time() + self.settings.shutdown_grace_s
        while self._runs and not self._forced.is_set():
            if all(run.control.paused for run in self._runs.values()):
                break  # paused runs wait for a person, not for us
            left = deadline - self._loop.time()
            if left <= 0:
                break
            await wait_first(
                self._forced.wait(), *self._tasks.values(), timeout=min(left, DRAIN_CHECK_S)
            )
        if not self._runs:
            return
        self.log.info("putting %d unfinished runs back in the queue", len(self._runs))
        for run in list(self._runs.values()):
            run.abort(AbortReason.SHUTDOWN)
        timeout = FORCED_EXIT_TIMEOUT_S if self._forced.is_set() else GIVE_BACK_TIMEOUT_S
        await asyncio.wait(list(self._tasks.values()), timeout=timeout)


def _inside(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
