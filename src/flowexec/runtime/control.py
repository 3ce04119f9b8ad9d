"""What the worker knows about one run's control state: paused or running, and whether to abort.

The worker's control poll and the run itself (breakpoints) both change it. A poll answer that
was read before the run changed its own state is stale, so every local change bumps `version`
and `observe` ignores answers to polls started at an older version, and any answer that arrives
while the run's own status write is in flight (`writing_status`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum

from flowexec.model import ExecutionStatus
from flowexec.runtime.tasks import wait_first


class AbortReason(Enum):
    LOST = "lease lost"
    """Someone else owns the execution now (or it is gone): write nothing more."""
    STOPPED = "stopped"
    """A client stopped it; the store already finished it and released the claim."""
    SHUTDOWN = "worker shutting down"
    """This worker is leaving: put the execution back in the queue without counting a failure."""


class RunControl:
    def __init__(self, on_abort: Callable[[], None] | None = None) -> None:
        self._running = asyncio.Event()
        self._running.set()
        self._aborted = asyncio.Event()
        self._on_abort = on_abort
        self.abort_reason: AbortReason | None = None
        self.abort_detail = ""
        self.version = 0
        self._writing = False
        self._deadline: asyncio.Timeout | None = None
        self._deadline_left: float | None = None

    # ------------------------------------------------------------ state

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def pause(self) -> bool:
        """Hold at the next node boundary; True if this changed anything."""
        if self.paused:
            return False
        self.version += 1
        self._running.clear()
        self._suspend_deadline()
        return True

    def resume(self) -> bool:
        if not self.paused:
            return False
        self.version += 1
        self._running.set()
        self._restore_deadline()
        return True

    @contextmanager
    def writing_status(self) -> Iterator[None]:
        """Around the run's own status write: a poll answered meanwhile may have read the
        status from before the write, and polls in flight afterwards are invalidated."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
            self.version += 1

    def abort(self, reason: AbortReason, detail: str = "") -> bool:
        """End the run: the first reason wins. True if this call aborted it."""
        if self.aborted:
            return False
        self.abort_reason = reason
        self.abort_detail = detail or reason.value
        self._aborted.set()
        if self._on_abort is not None:
            self._on_abort()
        return True

    def observe(self, status: ExecutionStatus | None, polled_at_version: int) -> str | None:
        """Apply a control-poll answer; returns what changed ("paused", "resumed"), if anything."""
        if polled_at_version != self.version or self.aborted or self._writing:
            return None
        if status is ExecutionStatus.RUNNING:
            return "resumed" if self.resume() else None
        if status is ExecutionStatus.PAUSED:
            return "paused" if self.pause() else None
        if status is ExecutionStatus.STOPPED:
            self.abort(AbortReason.STOPPED, "stopped by a client")
        elif status is None:
            self.abort(AbortReason.LOST, "the execution was deleted")
        else:
            self.abort(AbortReason.LOST, f"the execution was moved to {status.value!r} elsewhere")
        return None

    # ------------------------------------------------------------ waiting

    async def wait_running(self) -> bool:
        """Wait while paused. False if the run was aborted meanwhile (or before)."""
        if self.aborted:
            return False
        if self._running.is_set():
            return True
        await wait_first(self._running.wait(), self._aborted.wait())
        return not self.aborted

    async def wait_resumed(self) -> None:
        """Inside the flow: hold at a node boundary while paused (an abort cancels the flow)."""
        await self._running.wait()

    # ------------------------------------------------------------ the flow timeout

    def attach_deadline(self, deadline: asyncio.Timeout) -> None:
        """The flow timeout does not run while the execution is paused."""
        self._deadline = deadline
        if self.paused:
            self._suspend_deadline()

    def _suspend_deadline(self) -> None:
        d = self._deadline
        if d is None or d.expired() or d.when() is None:
            return
        when = d.when()
        assert when is not None
        self._deadline_left = max(when - asyncio.get_running_loop().time(), 0.0)
        d.reschedule(None)

    def _restore_deadline(self) -> None:
        d, left = self._deadline, self._deadline_left
        if d is None or left is None or d.expired():
            return
        self._deadline_left = None
        d.reschedule(asyncio.get_running_loop().time() + left)
