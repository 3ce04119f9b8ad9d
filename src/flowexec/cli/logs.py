"""Logging for commands: one handler and one format for every logger, flowexec's, the
database driver's and an app's alike; quiet for one-shot commands, informative for
long-running ones.

Each record is one line: `key=value` text, or a JSON object with `--log-json`. Every change is
undone when the command's context closes, so that running the app in-process (tests, or a
program embedding it) leaves that process's logging as it found it; and handlers write to the
current `sys.stderr`, not to the one that existed when they were made.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from typing import TextIO

import typer

from flowexec.cli.session import Settings
from flowexec.runtime.logs import JsonFormatter, KeyValueFormatter


class LogLevel(StrEnum):
    """The levels `--log-level` takes."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def number(self) -> int:
        return logging.getLevelNamesMapping()[self.name]
DRIVER_LOGGER = "psycopg"


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


def _handler(json_lines: bool) -> CurrentStderrHandler:
    handler = CurrentStderrHandler()
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    return handler


def _owns_root() -> bool:
    """Whether the root logger is ours to configure: a real `flowexec` process, where nobody
    else set it up (under pytest or an embedding program, their handlers stay)."""
    handlers = logging.getLogger().handlers
    return all(isinstance(h, CurrentStderrHandler) for h in handlers)


def _level(settings: Settings | None, default: int) -> int:
    if settings is None:
        return default
    if settings.debug:
        return logging.DEBUG
    if settings.log_level is not None:
        return LogLevel(settings.log_level.lower()).number
    return default


def configure_cli_logging(ctx: typer.Context, settings: Settings) -> None:
    """Warnings (everything with --debug) on stderr, all in one format; the driver's connection
    retries stay out, since a command that cannot reach its database says so in its one error
    line."""
    if _owns_root():
        _scoped(ctx, None, level=_level(settings, logging.WARNING),
                handler=_handler(settings.log_json))
    _scoped(ctx, DRIVER_LOGGER, level=logging.DEBUG if settings.debug else logging.ERROR)


def stream_runtime_logs(ctx: typer.Context, *, debug: bool, json_lines: bool) -> None:
    """For `worker` and `recover --loop`: flowexec's structured lines (worker and execution ids
    on each) and the driver's warnings, because a long-running process should say when its
    database drops out; all in the one format of `configure_cli_logging`."""
    obj = ctx.find_root().obj
    settings = obj if isinstance(obj, Settings) else None
    level = logging.DEBUG if debug else _level(settings, logging.INFO)
    handler = _handler(json_lines or (settings is not None and settings.log_json))
    driver_level = logging.DEBUG if debug else logging.WARNING
    if _owns_root():
        _scoped(ctx, None, level=level, handler=handler)
        _scoped(ctx, "flowexec", level=level)
        _scoped(ctx, DRIVER_LOGGER, level=driver_level)
    else:  # embedded: flowexec's and the driver's lines share a handler of their own
        _scoped(ctx, "flowexec", level=level, handler=handler)
        _scoped(ctx, DRIVER_LOGGER, level=driver_level, handler=handler)


def quiet_runtime_logs(ctx: typer.Context) -> None:
    """For the demo, which narrates what happens itself: only errors from the runtime."""
    _scoped(ctx, "flowexec", level=logging.ERROR)
