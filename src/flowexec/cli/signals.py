"""SIGTERM/SIGINT for long-running commands: the first asks for a graceful stop, a second exits."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def graceful_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """Route the stop signals to `request_stop` while the running loop is inside this block."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            sys.stderr.write("flowexec: second signal, exiting now\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        received.append(signum)
        sys.stderr.write(f"flowexec: {signal.Signals(signum).name} received, stopping\n")
        sys.stderr.flush()
        request_stop()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
