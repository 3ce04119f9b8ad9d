"""The stop signals (SIGTERM, SIGINT) of long-running processes: the Worker's and the CLI's."""

from __future__ import annotations

import asyncio
import signal
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
