"""Logging for commands: quiet for one-shot commands, structured lines for long-running ones.

Every change is undone when the command's context closes, so that running the app in-process
(tests, or a program embedding it) leaves that process's logging as it found it; and handlers
write to the current `sys.stderr`, not to the one that existed when they were made.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import typer

from flowexec.runtime.logs import JsonFormatter, KeyValueFormatter


class CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """A stream handler bound to whatever `sys.stderr` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """`StreamHandler.__init__` assigns a stream; this handler always uses the current one."""


def _scoped(
    ctx: typer.Context,
    name: str | None,
    *,
    level: int,
    handler: logging.Handler | None = None,
) -> None:
    """Set a logger's level (and, given one, make `handler` its only handler) until the end."""
    logger = logging.getLogger(name)
    saved = (logger.level, list(logger.handlers), logger.propagate)

    def restore() -> None:
        logger.setLevel(saved[0])
        logger.handlers[:] = saved[1]
        logger.propagate = saved[2]

    ctx.call_on_close(restore)
    logger.setLevel(level)
    if handler is not None:
        logger.handlers[:] = [handler]
        logger.propagate = name is None


def configure_cli_logging(ctx: typer.Context, debug: bool) -> None:
    """Warnings (everything with --debug) on stderr; the driver's connection retries stay out,
    since a command that cannot reach its database says so in its one error line."""
    root = logging.getLogger()
    if not root.handlers:  # a real process; under pytest or an embedding program, theirs stay
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        _scoped(ctx, None, level=logging.DEBUG if debug else logging.WARNING, handler=handler)
    _scoped(ctx, "psycopg", level=logging.DEBUG if debug else logging.ERROR)


def stream_runtime_logs(ctx: typer.Context, *, debug: bool, json_lines: bool) -> None:
    """For `worker` and `recover --loop`: flowexec's structured lines (worker and execution ids
    on each), and the driver's warnings, because a long-running process should say when its
    database drops out."""
    handler = CurrentStderrHandler()
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    _scoped(ctx, "flowexec", level=logging.DEBUG if debug else logging.INFO, handler=handler)
    _scoped(ctx, "psycopg", level=logging.DEBUG if debug else logging.WARNING)


def quiet_runtime_logs(ctx: typer.Context) -> None:
    """For the demo, which narrates what happens itself: only errors from the runtime."""
    _scoped(ctx, "flowexec", level=logging.ERROR)
