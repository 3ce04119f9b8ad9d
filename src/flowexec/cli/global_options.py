"""The global options, accepted before the command (`flowexec --json ls f`) and after it
(`flowexec ls f --json`), by every command.

The app's callback reads them before the command. Each command function is wrapped in one
that takes the same options as extra keyword parameters (typer reads them from its signature,
so this uses nothing but typer's public API); what a command was given overrides the
callback's `Settings` before its body runs. A command that defines one of these options
itself (`--json`) keeps its own.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from flowexec.cli.logs import LogLevel, configure_cli_logging
from flowexec.cli.session import EXIT_BAD_INPUT, Settings, fail
from flowexec.errors import ValidationError
from flowexec.model import check_table_prefix
from flowexec.store.urls import DEFAULT_URL, SESSION_URL_ENV

SESSION_DATABASE_URL_HELP = (
    "PostgreSQL only: a direct or session-pooled URL to LISTEN on when --database-url goes "
    f"through a transaction pooler. Default: ${SESSION_URL_ENV}."
)
DATABASE_URL_HELP = (
    "postgresql://user@host/db or sqlite:///path. Default: $FLOWEXEC_DATABASE_URL, "
    f"else {DEFAULT_URL}."
)
TABLE_PREFIX_HELP = "Prefix of flowexec's tables, one per installation."
JSON_HELP = "Machine-readable output for every command."
DEBUG_HELP = "Debug logs, and tracebacks instead of one-line errors."
LOG_JSON_HELP = "Log lines as JSON objects (every logger, the database driver's too)."
LOG_LEVEL_HELP = "The lowest level logged. Default: warning; info for worker and recover --loop."


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


GLOBAL_PARAMETERS = (
    _keyword("database_url", Annotated[str | None, typer.Option(
        "--database-url", help=DATABASE_URL_HELP, show_default=False)], None),
    _keyword("session_database_url", Annotated[str | None, typer.Option(
        "--session-database-url", help=SESSION_DATABASE_URL_HELP, show_default=False)], None),
    _keyword("table_prefix", Annotated[str | None, typer.Option(
        "--table-prefix", help=TABLE_PREFIX_HELP, show_default=False)], None),
    _keyword("json_output", Annotated[bool, typer.Option("--json", help=JSON_HELP)], False),
    _keyword("debug", Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)], False),
    _keyword("log_json", Annotated[bool, typer.Option("--log-json", help=LOG_JSON_HELP)], False),
    _keyword("log_level", Annotated[LogLevel | None, typer.Option(
        "--log-level", help=LOG_LEVEL_HELP, show_default=False, case_sensitive=False)], None),
)
"""The options as each command takes them: None or False means "not given here"."""


def _option_names(parameter: inspect.Parameter) -> set[str]:
    """A parameter's name and its option names. In `Annotated[..., typer.Option("--x")]` the
    first name is typer's `default` field, the others its `param_decls`."""
    names = {parameter.name}
    for info in typing.get_args(parameter.annotation)[1:]:
        first = getattr(info, "default", None)
        if isinstance(first, str) and first.startswith("-"):
            names.add(first)
        names.update(getattr(info, "param_decls", None) or ())
    return names


def checked_settings(settings: Settings) -> Settings:
    """The settings, once the value typer cannot check is (the prefix names tables in SQL).

    A session URL is handed on by its environment variable, which every store this process
    opens reads, and the worker processes and `serve`'s processes it starts inherit."""
    try:
        check_table_prefix(settings.table_prefix)
    except ValidationError as exc:
        fail(f"--table-prefix: {exc}", EXIT_BAD_INPUT)
    if settings.session_database_url:
        os.environ[SESSION_URL_ENV] = settings.session_database_url
    return settings


def accept_global_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command`, taking the global options too (those it does not define itself)."""
    signature = inspect.signature(command, eval_str=True)
    own = set().union(*(_option_names(p) for p in signature.parameters.values()))
    added = [p for p in GLOBAL_PARAMETERS if not _option_names(p) & own]
    context_name = next(
        (p.name for p in signature.parameters.values() if p.annotation is typer.Context), None
    )
    extra = [] if context_name else [_keyword("global_options_context", typer.Context, None)]

    @functools.wraps(command)
    def with_global_options(*args: Any, **values: Any) -> Any:
        given = {p.name: values.pop(p.name) for p in added}
        ctx = values[context_name] if context_name else values.pop("global_options_context")
        _apply(ctx, {name: value for name, value in given.items() if value})
        return command(*args, **values)

    parameters = [*signature.parameters.values(), *added, *extra]
    with_global_options.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters
    )
    with_global_options.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_global_options


def _apply(ctx: typer.Context, given: dict[str, Any]) -> None:
    """Given after the command, an option overrides what the app's callback resolved."""
    if not given:
        return
    root = ctx.find_root()
    settings = root.obj
    if not isinstance(settings, Settings):
        return
    root.obj = checked_settings(dataclasses.replace(settings, **given))
    configure_cli_logging(ctx, root.obj)
