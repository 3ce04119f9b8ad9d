"""What every peer's no-op job does: tell the harness, by one UDP datagram, that it started.

Worker processes import this module, so it needs nothing but the standard library. The
timestamp is CLOCK_MONOTONIC, which every process on the machine shares, so the harness
subtracts it from the time it called enqueue.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Coroutine
from typing import Any

DSN_ENV = "FLOWEXEC_BENCH_PEER_DSN"
"""The database the worker process (and the app module it imports) connects to."""
REPORT_ENV = "FLOWEXEC_BENCH_PEER_REPORT_TO"
"""`host:port` of the harness's UDP socket."""

_socket: socket.socket | None = None
_address: tuple[str, int] | None = None


def now() -> float:
    """Seconds on the clock shared by all processes of this machine."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def dsn() -> str:
    return os.environ[DSN_ENV]


def job_started(seq: int) -> None:
    """Report that job `seq` began, with the time it did."""
    global _socket, _address
    if _socket is None or _address is None:
        host, port = os.environ[REPORT_ENV].rsplit(":", 1)
        _address = (host, int(port))
        _socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _socket.sendto(f"{seq} {now()!r}".encode(), _address)


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """A worker process's event loop: uvloop when installed (as pgqueuer's and oban's CLIs
    choose), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
