"""The stop signals (SIGTERM, SIGINT) of long-running processes: the Worker's and the CLI's."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_signals_to(handler: Callable[[signal.Signals], None]) -> Iterator[None]:
    """Route the stop signals to `handler` on the running loop while inside this block.

    Only the main thread can receive signals, and some loops cannot route them: there the
    block runs without handlers, and whoever runs it stops it another way.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, handler, sig)
            except (NotImplementedError, RuntimeError):  # not on this platform / loop
                continue
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def why_not_route_signals() -> str | None:
    """Why stop signals must be left alone here, or None when routing them is safe.

    A loop outside the main thread cannot receive them; in a notebook, SIGINT is how the user
    interrupts a cell, so a worker that took it would stop when an unrelated cell is
    interrupted. IPython is looked up, never imported: a process without it is no notebook.
    """
    if threading.current_thread() is not threading.main_thread():
        return "the event loop is not in the main thread"
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        return "an IPython kernel (a notebook) is running"
    return None
