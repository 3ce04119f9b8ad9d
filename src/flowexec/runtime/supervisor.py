"""Supervising a group of worker processes (`flowexec worker --processes N`).

The supervisor keeps N children running, each a single-process worker in its own interpreter.
A child that dies is logged and started again after a backoff that grows with its consecutive
failures; when children die more often than `max_restarts` within `restart_window_s`, something
is wrong beyond one bad run (a broken deployment, a database refusing every connection), so
the group stops with a message saying so and a failing exit code, for the process manager
above to see. A child that exits 0 on its own was recycled (`max_runs`) and is replaced at once.

Stop signals are passed on: the children drain gracefully, a second signal makes them exit at
once. Children learn of a supervisor killed outright through `ParentWatch`
(runtime/parent_watch.py), which the supervisor arms by naming itself in their environment.
One loop (`run`) watches every child and every pending restart (docs/architecture.md §7).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowexec.model import check_int_range, check_positive
from flowexec.policy import Backoff
from flowexec.runtime.parent_watch import SUPERVISOR_PID_ENV
from flowexec.runtime.signals import stop_signals_to

log = logging.getLogger("flowexec.supervisor")

MAX_PROCESSES = 256


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    """How many children, how soon a dead one is replaced, and when to give up."""

    processes: int = 2
    restart_backoff: Backoff = field(default_factory=lambda: Backoff(base_ms=500, max_ms=30_000))
    max_restarts: int = 10
    restart_window_s: float = 60.0

    def __post_init__(self) -> None:
        check_int_range(self.processes, "processes", 1, MAX_PROCESSES)
        check_int_range(self.max_restarts, "max_restarts", 0, 1_000_000)
        check_positive(self.restart_window_s, "restart_window_s")


ChildCommand = Callable[[int], Sequence[str]]
"""The argv of the child in a slot (numbered from 1)."""


@dataclass(slots=True)
class Slot:
    """One place in the group: its child now, or when the next one starts."""

    number: int
    process: asyncio.subprocess.Process | None = None
    waiting: asyncio.Task[int] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None


class Supervisor:
    def __init__(
        self,
        command: ChildCommand,
        *,
        env: dict[str, str],
        settings: SupervisorSettings,
    ) -> None:
        self._command = command
        self._env = {**env, SUPERVISOR_PID_ENV: str(os.getpid())}
        self.settings = settings
        self._slots = [Slot(number) for number in range(1, settings.processes + 1)]
        self._restarts: deque[float] = deque()
        self._stopping = asyncio.Event()
        self._exit_code = 0

    @property
    def pids(self) -> list[int]:
        """The pids of the children alive now, by slot."""
        return [s.process.pid for s in self._slots if s.process is not None]

    async def run(self) -> int:
        """Run the group until a stop signal (exit code 0 once every child has drained) or
        until the restart limit is passed (the exit code of the last child that died)."""
        with stop_signals_to(self._on_signal):
            try:
                for slot in self._slots:
                    if not self._stopping.is_set():  # a signal may come while they start
                        await self._start(slot)
                log.info("started %d worker processes: %s", len(self._slots), self.pids)
                await self._watch()
            finally:
                for slot in self._slots:
                    if slot.process is not None and slot.process.returncode is None:
                        slot.process.kill()  # only when the supervisor itself is cancelled
                        await slot.process.wait()
        return self._exit_code

    async def _watch(self) -> None:
        stop_requested = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                running = {s.waiting: s for s in self._slots if s.waiting is not None}
                if self._stopping.is_set() and not running:
                    return
                waits: set[asyncio.Future[Any]] = set(running)
                if not stop_requested.done():
                    waits.add(stop_requested)
                await asyncio.wait(
                    waits, timeout=self._until_next_restart(), return_when=asyncio.FIRST_COMPLETED
                )
                for task, slot in running.items():
                    if task.done():
                        self._ended(slot, task.result())
                for slot in self._slots:
                    due = slot.restart_at is not None and slot.restart_at <= time.monotonic()
                    if due and not self._stopping.is_set():
                        await self._start(slot)
        finally:
            stop_requested.cancel()

    def _until_next_restart(self) -> float | None:
        pending = [s.restart_at for s in self._slots if s.restart_at is not None]
        if not pending or self._stopping.is_set():
            return None
        return max(min(pending) - time.monotonic(), 0.0)

    async def _start(self, slot: Slot) -> None:
        restart = slot.started_at > 0
        slot.restart_at = None
        slot.process = await asyncio.create_subprocess_exec(
            *self._command(slot.number), env=self._env, process_group=0
        )
        slot.started_at = time.monotonic()
        slot.waiting = asyncio.create_task(slot.process.wait())
        if restart:
            log.info("worker process %d started in slot %d", slot.process.pid, slot.number)

    def _ended(self, slot: Slot, code: int) -> None:
        assert slot.process is not None
        pid = slot.process.pid
        slot.process = slot.waiting = None
        if self._stopping.is_set():
            if code != 0:
                log.warning("worker process %d exited with %d while stopping", pid, code)
            return
        if code == 0:
            log.info("worker process %d (slot %d) recycled itself: starting a new one",
                     pid, slot.number)
            slot.failures = 0
            slot.restart_at = time.monotonic()
            return
        now = time.monotonic()
        if now - slot.started_at > self.settings.restart_window_s:
            slot.failures = 0  # it had been healthy for a while: this is a fresh failure
        self._restarts.append(now)
        while self._restarts and self._restarts[0] < now - self.settings.restart_window_s:
            self._restarts.popleft()
        if len(self._restarts) > self.settings.max_restarts:
            log.error(
                "worker process %d exited with %d; %d worker processes died within %g s, "
                "more than the limit of %d restarts: stopping the group",
                pid, code, len(self._restarts), self.settings.restart_window_s,
                self.settings.max_restarts,
            )
            self._exit_code = code if code > 0 else 128 - code
            self._stop(signal.SIGTERM)
            return
        delay_s = self.settings.restart_backoff.ceiling_ms(slot.failures) / 1000
        slot.failures += 1
        slot.restart_at = now + delay_s
        log.error("worker process %d (slot %d) exited with %d: restarting it in %.1f s",
                  pid, slot.number, code, delay_s)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            log.warning("%s again: the worker processes exit at once", sig.name)
        else:
            log.info("%s: stopping %d worker processes gracefully", sig.name, len(self.pids))
        self._stop(sig)

    def _stop(self, sig: signal.Signals) -> None:
        """Pass `sig` to every child; slots waiting for a restart stay empty."""
        self._stopping.set()
        for slot in self._slots:
            slot.restart_at = None
            if slot.process is not None and slot.process.returncode is None:
                slot.process.send_signal(sig)
