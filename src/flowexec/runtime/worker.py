"""`Worker`: claims executions of its app's flows and runs them, durably (SPEC §4, §5, §7).

Four loops share one store:
- claiming: `claim_and_start` in batches up to the free capacity, completing in the same
  transaction the runs that returned since the last one; sleeps on `wait_for_work`
  (LISTEN/NOTIFY on Postgres, polling on SQLite) or until a run returns or ends;
- heartbeat: one `extend_claims` for every claim held; a refused claim cancels its run at once;
- control: one `get_statuses` for every run, so that stop and pause arrive within a second;
- recovery (optional): the elected sweeper that requeues dead workers' runs.
Shutdown (SIGTERM/SIGINT or `stop()`) stops claiming, gives runs `shutdown_grace_s` to finish,
then puts the rest back in the queue without counting a failure; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from flowexec.errors import ConfigError, StoreUnavailable, ValidationError
from flowexec.model import (
    MAX_TIMEOUT_MS,
    StartedExecution,
    check_id,
    check_int_range,
    check_timeout_ms,
)
from flowexec.runtime.app import App
from flowexec.runtime.completions import CompletionQueue
from flowexec.runtime.control import AbortReason
from flowexec.runtime.logs import bound
from flowexec.runtime.recovery import RecoveryService
from flowexec.runtime.run import ExecutionRun, RunSettings
from flowexec.runtime.stores import use_store
from flowexec.store.protocol import ExecutionStore

MAX_CONCURRENCY = 1000
DEFAULT_POLL_INTERVAL_S = {"postgres": 1.0, "sqlite": 0.25}
"""Postgres wakes on NOTIFY, so its poll only covers lost notifications and retry delays."""
GIVE_BACK_TIMEOUT_S = 10.0
FORCED_EXIT_TIMEOUT_S = 1.0
STORE_BACKOFF_MAX_S = 5.0
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def default_worker_id() -> str:
    host = socket.gethostname()[:64] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def _positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{name} must be a number, not {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        raise ValidationError(f"{name} must be {'at least 0' if allow_zero else 'positive'}")
    return float(value)


class Worker:
    def __init__(
        self,
        app: App,
        store_or_url: ExecutionStore | str | None = None,
        *,
        concurrency: int = 10,
        worker_id: str | None = None,
        claim_timeout_ms: int = 30_000,
        heartbeat_interval_ms: int = 5_000,
        shutdown_grace_s: float = 30.0,
        recovery: bool = True,
        poll_interval_s: float | None = None,
        control_interval_s: float = 0.25,
        retry_backoff_base_ms: int = 1_000,
        retry_backoff_max_ms: int = 300_000,
        recovery_interval_s: float = 10.0,
        recovery_max_failures: int = 5,
        table_prefix: str = "flowexec_",
        install_signal_handlers: bool = True,
        **store_options: Any,
    ) -> None:
        if not isinstance(app, App):
            raise ConfigError(f"Worker needs an App, not {type(app).__name__}")
        if not app.flow_ids:
            raise ConfigError("the app registers no flows: a worker would have nothing to run")
        self.app = app
        self.worker_id = default_worker_id() if worker_id is None else check_id(
            worker_id, "worker_id"
        )
        self.concurrency = check_int_range(concurrency, "concurrency", 1, MAX_CONCURRENCY)
        self.claim_timeout_ms = check_timeout_ms(claim_timeout_ms, "claim_timeout_ms")
        self.heartbeat_interval_ms = check_int_range(
            heartbeat_interval_ms, "heartbeat_interval_ms", 1, max(claim_timeout_ms - 1, 1)
        )
        if self.heartbeat_interval_ms >= self.claim_timeout_ms:
            raise ValidationError("heartbeat_interval_ms must be shorter than claim_timeout_ms")
        self.shutdown_grace_s = _positive(shutdown_grace_s, "shutdown_grace_s", allow_zero=True)
        self.poll_interval_s = (
            None if poll_interval_s is None else _positive(poll_interval_s, "poll_interval_s")
        )
        self.control_interval_s = _positive(control_interval_s, "control_interval_s")
        check_int_range(retry_backoff_base_ms, "retry_backoff_base_ms", 0, MAX_TIMEOUT_MS)
        check_int_range(
            retry_backoff_max_ms, "retry_backoff_max_ms", retry_backoff_base_ms, MAX_TIMEOUT_MS
        )
        self._retry_backoff = (retry_backoff_base_ms, retry_backoff_max_ms)
        self.recovery = bool(recovery)
        self._recovery_interval_s = _positive(recovery_interval_s, "recovery_interval_s")
        self._recovery_max_failures = check_int_range(
            recovery_max_failures, "recovery_max_failures", 1, 1_000_000
        )
        self._store_or_url = store_or_url
        self._table_prefix = table_prefix
        self._store_options = store_options
        self._install_signals = install_signal_handlers
        self.log = bound("flowexec.worker", worker_id=self.worker_id)

        self._runs: dict[tuple[str, int], ExecutionRun] = {}
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._completions = CompletionQueue(on_submit=self._slot_freed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: ExecutionStore | None = None
        self._ran = False

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
        poll_s = self.poll_interval_s or DEFAULT_POLL_INTERVAL_S.get(store.backend, 0.5)
        base_ms, max_ms = self._retry_backoff
        settings = RunSettings(
            max_depth=store.max_depth,
            retry_backoff_base_ms=base_ms,
            retry_backoff_max_ms=max_ms,
            rng=random.Random(),
        )
        recovery = (
            RecoveryService(
                store,
                worker_id=self.worker_id,
                interval_s=self._recovery_interval_s,
                max_failures=self._recovery_max_failures,
                backoff_base_ms=base_ms,
                backoff_max_ms=max_ms,
            )
            if self.recovery
            else None
        )
        loops = [
            asyncio.create_task(
                self._forever("heartbeat", self._heartbeat, self.heartbeat_interval_ms / 1000)
            ),
            asyncio.create_task(
                self._forever("control poll", self._poll_controls, self.control_interval_s)
            ),
            asyncio.create_task(
                self._forever("lease watchdog", self._expire_leases, self.control_interval_s)
            ),
        ]
        # Recovery is stopped, not cancelled, so that it gives its lock back.
        background = [*loops] if recovery is None else [*loops, asyncio.create_task(recovery.run())]
        installed = self._add_signal_handlers()
        self.log.info(
            "worker started: flows %s, concurrency %d, backend %s",
            ", ".join(self.app.flow_ids), self.concurrency, store.backend,
        )
        try:
            try:
                await self._claim_loop(store, settings, poll_s)
            except BaseException:
                self._request_stop(True)  # cancelled: give the runs back, quickly
                raise
            finally:
                self._completions.close()
                await self._drain()
        finally:
            if recovery is not None:
                recovery.stop()
            for task in loops:
                task.cancel()
            await asyncio.wait(background, timeout=GIVE_BACK_TIMEOUT_S)
            await self._cancel_leftovers()
            self._remove_signal_handlers(installed)
            if owned:
                await store.close()
            self.log.info("worker stopped")

    # ------------------------------------------------------------ claiming

    async def _claim_loop(
        self, store: ExecutionStore, settings: RunSettings, poll_s: float
    ) -> None:
        backoff_s = 0.1
        while not self._stopping.is_set():
            # Runs whose completion waits still count here; each one written frees its slot
            # inside the statement.
            free = max(self.concurrency - len(self._runs), 0)
            if free > 0 or len(self._completions):
                taken = self._completions.take()
                try:
                    batch = await store.claim_and_start(
                        self.worker_id,
                        self.claim_timeout_ms,
                        limit=free,
                        flow_ids=self.app.flow_ids,
                        complete=[completion for completion, _ in taken],
                    )
                except Exception as exc:
                    CompletionQueue.settle(taken, ())  # those runs write their own outcome
                    self.log.warning(
                        "claiming failed, retrying in %.1f s: %s", backoff_s, exc,
                        exc_info=not isinstance(exc, StoreUnavailable),
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), backoff_s)
                    backoff_s = min(backoff_s * 2, STORE_BACKOFF_MAX_S)
                    continue
                backoff_s = 0.1
                CompletionQueue.settle(taken, batch.completed)
                for started in batch.started:
                    self._launch(store, started, settings)
                if batch.started and len(batch.started) == free + len(batch.completed):
                    continue  # there may be more
            await self._wait_for_work(store, poll_s if free > 0 else None)

    def _launch(
        self, store: ExecutionStore, started: StartedExecution, settings: RunSettings
    ) -> None:
        run = ExecutionRun(
            app=self.app,
            store=store,
            started=started,
            completions=self._completions,
            claim_timeout_ms=self.claim_timeout_ms,
            settings=settings,
            log=self.log,
        )
        if self._stopping.is_set():
            run.abort(AbortReason.SHUTDOWN)  # claimed while stopping: give it straight back
        key = (run.execution_id, run.epoch)
        self._runs[key] = run
        task = asyncio.create_task(run.execute(), name=f"flowexec-run:{run.execution_id}")
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._forget(key))

    def _forget(self, key: tuple[str, int]) -> None:
        self._runs.pop(key, None)
        self._tasks.pop(key, None)
        self._slot_freed.set()

    async def _wait_for_work(self, store: ExecutionStore, poll_s: float | None) -> None:
        """Until new work may be there (or `poll_s` passed), a run ended, or a stop."""
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self._stopping.wait()),
            asyncio.ensure_future(self._slot_freed.wait()),
        ]
        if poll_s is not None:
            waits.append(asyncio.ensure_future(store.wait_for_work(poll_s)))
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        self._slot_freed.clear()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                self.log.warning("waiting for work failed: %s", task.exception())

    # ------------------------------------------------------------ heartbeat and control

    async def _forever(
        self, name: str, step: Callable[[], Awaitable[None]], interval_s: float
    ) -> None:
        """Run `step` every `interval_s` until cancelled; one failed step never ends the loop."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await step()
            except (StoreUnavailable, TimeoutError) as exc:
                self.log.warning("%s failed: %s", name, str(exc) or type(exc).__name__)
            except Exception:
                self.log.exception("%s failed", name)

    async def _heartbeat(self) -> None:
        """Extend every held claim in one statement; a claim left out is lost: cancel its run."""
        runs = [run for run in self._runs.values() if run.holds_lease]
        if not runs:
            return
        sent = time.monotonic()
        # A heartbeat that hangs (a cut network, a pool waiting for a connection) must not
        # hold the next one up for longer than a lease; the watchdog stops the runs meanwhile.
        held = await asyncio.wait_for(
            self.store.extend_claims(
                self.worker_id, [(r.execution_id, r.epoch) for r in runs], self.claim_timeout_ms
            ),
            self.claim_timeout_ms / 1000,
        )
        for run in runs:
            if run.execution_id in held:
                run.lease_deadline = sent + self.claim_timeout_ms / 1000
            elif run.holds_lease:
                run.abort(AbortReason.LOST, "heartbeat refused: the claim was released or taken")

    async def _expire_leases(self) -> None:
        """Stop every run whose lease ran out unrenewed, without asking the store.

        The deadline is counted from before each heartbeat was sent, so it never lies past
        the database's own expiry: the run stops before another worker can take it over,
        whatever the heartbeat call is doing (failing, or hanging on a cut network).
        """
        now = time.monotonic()
        for run in list(self._runs.values()):
            if run.holds_lease and run.lease_deadline <= now:
                run.abort(AbortReason.LOST, "the lease ran out before a heartbeat renewed it")

    async def _poll_controls(self) -> None:
        """One status read for every run: stop cancels, pause holds, resume releases."""
        runs = [run for run in self._runs.values() if run.is_polled]
        if not runs:
            return
        versions = {run.execution_id: run.control.version for run in runs}
        statuses = await self.store.get_statuses(list(versions))
        for run in runs:
            if not run.is_polled:
                continue
            change = run.control.observe(
                statuses.get(run.execution_id), versions[run.execution_id]
            )
            if change is not None:
                run.log.info("%s by a client", change)

    # ------------------------------------------------------------ shutdown

    def _request_stop(self, force: bool) -> None:
        if force:
            self._forced.set()
        self._stopping.set()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set():
            self.log.warning("%s again: exiting at once", name)
            self._request_stop(True)
            return
        self.log.info(
            "%s: shutting down, giving %d runs up to %g s (send it again to exit at once)",
            name, len(self._runs), self.shutdown_grace_s,
        )
        self._request_stop(False)

    async def _drain(self) -> None:
        """Let runs finish within the grace period, then give the rest back to the queue."""
        assert self._loop is not None
        deadline = self._loop.time() + self.shutdown_grace_s
        while self._runs and not self._forced.is_set():
            if all(run.control.paused for run in self._runs.values()):
                break  # paused runs wait for a person, not for us
            left = deadline - self._loop.time()
            if left <= 0:
                break
            forced: asyncio.Future[Any] = asyncio.ensure_future(self._forced.wait())
            await asyncio.wait(
                {forced, *self._tasks.values()},
                timeout=min(left, 0.25),
                return_when=asyncio.FIRST_COMPLETED,
            )
            forced.cancel()
        if not self._runs:
            return
        self.log.info("putting %d unfinished runs back in the queue", len(self._runs))
        for run in list(self._runs.values()):
            run.abort(AbortReason.SHUTDOWN)
        timeout = FORCED_EXIT_TIMEOUT_S if self._forced.is_set() else GIVE_BACK_TIMEOUT_S
        await asyncio.wait(list(self._tasks.values()), timeout=timeout)

    async def _cancel_leftovers(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=FORCED_EXIT_TIMEOUT_S)

    def _add_signal_handlers(self) -> list[signal.Signals]:
        if not self._install_signals or threading.current_thread() is not threading.main_thread():
            return []
        assert self._loop is not None
        installed = []
        for sig in SHUTDOWN_SIGNALS:
            try:
                self._loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError):  # not on this platform / loop
                continue
            installed.append(sig)
        return installed

    def _remove_signal_handlers(self, installed: list[signal.Signals]) -> None:
        if self._loop is None:
            return
        for sig in installed:
            self._loop.remove_signal_handler(sig)


def _inside(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
