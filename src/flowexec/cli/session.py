"""What every command shares: the global options, the store, and one way to fail.

Commands run their async body through `run`, so that every error a user can cause ends
as one line on stderr and a documented exit code, the same under `flowexec` and
`python -m flowexec`; `--debug` lets the traceback through instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from flowexec.errors import (
    ConfigError,
    FlowexecError,
    StoreUnavailable,
    ValidationError,
)
from flowexec.runtime.signals import stop_signals_to
from flowexec.store import ExecutionStore, open_store
from flowexec.store.urls import redact, resolve, scheme_of

T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]

EXIT_FAILED = 1
"""The operation did not succeed: unknown id, illegal transition, a run that failed."""
EXIT_BAD_INPUT = 2
"""The command line itself is wrong: bad URL, bad JSON, invalid value (also click's code)."""
EXIT_UNAVAILABLE = 3
"""The database cannot be reached, or is not migrated."""


class UsageError(FlowexecError):
    """A command-line value the CLI itself rejects (JSON that does not parse, a bad cursor)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The global options, resolved once in the app callback."""

    database_url: str | None
    table_prefix: str
    json_output: bool
    debug: bool
    log_json: bool = False
    log_level: str | None = None
    """`--log-level`: None is each command's own default (warnings; info for long-running)."""
    session_database_url: str | None = None
    """`--session-database-url`: where a PostgreSQL store LISTENs (docs/scaling.md)."""

    @property
    def url(self) -> str:
        return resolve(self.database_url)

    @property
    def shown_url(self) -> str:
        """The URL as it may be printed: without its password."""
        return redact(self.url)


def settings_of(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    if not isinstance(settings, Settings):  # a command invoked without the app callback
        raise RuntimeError("flowexec commands run under the flowexec app")
    return settings


def wants_json(ctx: typer.Context, local_flag: bool) -> bool:
    """`--json` works before the command (global) and after it (per command)."""
    return local_flag or settings_of(ctx).json_output


def exit_code_for(exc: FlowexecError) -> int:
    if isinstance(exc, ConfigError | ValidationError | UsageError):
        return EXIT_BAD_INPUT
    if isinstance(exc, StoreUnavailable):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """One line on stderr, then exit."""
    sys.stderr.write(f"flowexec: error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def run(settings: Settings, body: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body; turn flowexec's own errors into one line and an exit code."""
    try:
        return asyncio.run(body)
    except FlowexecError as exc:
        if settings.debug:
            raise
        fail(one_line(exc), exit_code_for(exc))
    except KeyboardInterrupt:
        if settings.debug:
            raise
        sys.stderr.write("flowexec: interrupted\n")
        raise typer.Exit(130) from None


@contextmanager
def graceful_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """Inside the block, a stop signal calls `request_stop`; a second one exits at once."""
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if received:
            sys.stderr.write("flowexec: second signal, exiting now\n")
            sys.stderr.flush()
            os._exit(128 + sig)
        received.append(sig)
        sys.stderr.write(f"flowexec: {sig.name} received, stopping\n")
        sys.stderr.flush()
        request_stop()

    with stop_signals_to(on_signal):
        yield


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@asynccontextmanager
async def opened_store(
    settings: Settings, *, create: bool = False
) -> AsyncIterator[ExecutionStore]:
    """The store the global options name, never migrated here: only `migrate` changes schemas.

    Without `create`, a SQLite file that does not exist is an error rather than a new empty
    file left behind by a mistyped path.
    """
    url = settings.url
    if not create and scheme_of(url) == "sqlite":
        from flowexec.store.urls import parse_sqlite_url  # only SQLite users need it

        target = parse_sqlite_url(url)
        if not target.exists():
            raise StoreUnavailable(
                f"there is no SQLite database at {target.path}: run `flowexec migrate` to create it"
            )
    store = await open_store(url, table_prefix=settings.table_prefix, migrate=False)
    try:
        yield store
    finally:
        await store.close()


def parse_json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"{option} nests arrays and objects too deeply") from None


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    value = parse_json(text, option)
    if not isinstance(value, dict):
        raise UsageError(f"{option} must be a JSON object, not {type(value).__name__}")
    return value
