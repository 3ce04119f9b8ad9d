"""A supervised worker's watch on its supervisor: when the supervisor is gone, so is the worker.

A supervisor killed outright (SIGKILL, the OOM killer) cannot pass anything on; its children
would keep running under init, and a restarted supervisor would start a second group beside
them. On Linux the kernel tells the child at once (`PR_SET_PDEATHSIG`, armed here with
`SIGUSR1`); everywhere, and for a supervisor that died before the child armed it, the watch
also looks at the parent pid every `CHECK_INTERVAL_S`. Either way the worker stops at once,
giving its runs back to the queue rather than draining them: nobody is left to wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("flowexec.supervisor")

SUPERVISOR_PID_ENV = "FLOWEXEC_SUPERVISOR_PID"
"""Set by the supervisor in each child's environment: the pid the child must outlive."""
CHECK_INTERVAL_S = 0.5
PARENT_DEATH_SIGNAL = signal.SIGUSR1
_PR_SET_PDEATHSIG = 1


def supervisor_pid() -> int | None:
    """The supervisor this process was started by, if any."""
    value = os.environ.get(SUPERVISOR_PID_ENV, "")
    return int(value) if value.isdigit() else None


def set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send `sig` when the parent dies (0: send nothing); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class ParentWatch:
    """Calls `on_orphaned` once, when the process whose pid is `parent_pid` is gone."""

    def __init__(self, parent_pid: int, on_orphaned: Callable[[], None]) -> None:
        self.parent_pid = parent_pid
        self._on_orphaned = on_orphaned
        self._orphaned = asyncio.Event()

    async def run(self) -> None:
        """Until the parent is gone (then `on_orphaned` has been called) or cancelled."""
        loop = asyncio.get_running_loop()
        handled = threading.current_thread() is threading.main_thread()
        armed = False
        if handled:
            loop.add_signal_handler(PARENT_DEATH_SIGNAL, self._orphaned.set)
        try:
            armed = handled and set_parent_death_signal(int(PARENT_DEATH_SIGNAL))
            while os.getppid() == self.parent_pid:  # checked after arming: no gap
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._orphaned.wait(), CHECK_INTERVAL_S)
                if self._orphaned.is_set():
                    break
            log.warning(
                "the supervisor (pid %d) is gone (%s): giving the runs back and exiting",
                self.parent_pid,
                "parent-death signal" if self._orphaned.is_set() else "parent pid changed",
            )
            self._on_orphaned()
        finally:
            if armed:
                set_parent_death_signal(0)  # nobody handles it any more
            if handled:
                loop.remove_signal_handler(PARENT_DEATH_SIGNAL)
