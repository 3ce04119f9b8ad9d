"""The `flowexec` command: global options, and every command registered in one place.

Commands are loaded when they are called (or listed by `--help`): `flowexec ls` never
imports the worker, and `flowexec --version` imports no command at all.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from flowexec.cli.global_options import (
    DATABASE_URL_HELP,
    DEBUG_HELP,
    JSON_HELP,
    LOG_JSON_HELP,
    LOG_LEVEL_HELP,
    SESSION_DATABASE_URL_HELP,
    TABLE_PREFIX_HELP,
    accept_global_options,
    checked_settings,
)
from flowexec.cli.logs import LogLevel, configure_cli_logging
from flowexec.cli.session import EXIT_FAILED, Settings, fail, one_line
from flowexec.model import DEFAULT_TABLE_PREFIX
from flowexec.store.urls import redact
from flowexec.version import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("flowexec.cli.operate_commands", "migrate"),
    "worker": ("flowexec.cli.worker_command", "worker"),
    "recover": ("flowexec.cli.operate_commands", "recover"),
    "submit": ("flowexec.cli.lifecycle_commands", "submit"),
    "start": ("flowexec.cli.lifecycle_commands", "start"),
    "stop": ("flowexec.cli.lifecycle_commands", "stop"),
    "pause": ("flowexec.cli.lifecycle_commands", "pause"),
    "resume": ("flowexec.cli.lifecycle_commands", "resume"),
    "retry": ("flowexec.cli.maintenance_commands", "retry"),
    "delete": ("flowexec.cli.maintenance_commands", "delete"),
    "purge": ("flowexec.cli.maintenance_commands", "purge"),
    "ls": ("flowexec.cli.list_command", "list_roots"),
    "show": ("flowexec.cli.inspect_commands", "show_execution"),
    "tree": ("flowexec.cli.inspect_commands", "show_tree"),
    "events": ("flowexec.cli.events_command", "events"),
    "claims": ("flowexec.cli.inspect_commands", "list_claims"),
    "stats": ("flowexec.cli.inspect_commands", "show_stats"),
    "workers": ("flowexec.cli.workers_command", "list_workers"),
    "schedules": ("flowexec.cli.schedules_command", "list_schedules"),
    "demo": ("flowexec.cli.demo_command", "run_demo_command"),
    "serve": ("flowexec.cli.serve_command", "serve"),
    "tokens": ("flowexec.cli.tokens_commands", "tokens"),
}
"""Each command's name, and the module and function (or `typer.Typer` group) that run it: a new
command is one line."""


CLI_EXCEPTIONS = (typer.Exit, typer.Abort, TyperException)
"""How the command line itself ends or reports a usage error; these pass through."""


class LazyCommands(TyperGroup):
    """The app's commands, each imported when it is first asked for. An error no command
    expected is one line on stderr too (passwords hidden), unless `--debug` asks for the
    traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CLI_EXCEPTIONS:
            raise
        except Exception as exc:
            if isinstance(ctx.obj, Settings) and ctx.obj.debug:
                raise
            fail(
                f"unexpected {type(exc).__name__}: {redact(one_line(exc))} "
                "(--debug shows the traceback)",
                EXIT_FAILED,
            )

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        module_name, function_name = COMMANDS[cmd_name]
        module = importlib.import_module(module_name)
        target = getattr(module, function_name)
        if isinstance(target, typer.Typer):  # a group of subcommands
            return typer.main.get_group(_with_global_options(cmd_name, target))
        single = typer.Typer(add_completion=False, rich_markup_mode=None)
        single.command(cmd_name)(accept_global_options(target))
        return typer.main.get_command(single)

def _with_global_options(name: str, group: typer.Typer) -> typer.Typer:
    """A command group whose own options and each of whose commands take the global options,
    like every single command (`flowexec tokens ls --json` and `flowexec tokens --json ls`)."""
    wrapped = typer.Typer(
        name=name, help=group.info.help, no_args_is_help=bool(group.info.no_args_is_help),
        add_completion=False, rich_markup_mode=None,
    )
    wrapped.callback()(accept_global_options(_group_callback))
    for info in group.registered_commands:
        assert info.callback is not None, "every registered command has a callback"
        wrapped.command(info.name, help=info.help)(accept_global_options(info.callback))
    return wrapped


def _group_callback(ctx: typer.Context) -> None:
    del ctx  # the global options are applied by accept_global_options


EPILOG = (
    "Exit codes: 0 ok; 1 the operation failed (unknown id, illegal transition, a run that "
    "failed); 2 bad input (URL, JSON, values); 3 database unreachable or not migrated."
)

app = typer.Typer(
    cls=LazyCommands,
    name="flowexec",
    help="Run flows durably, and look inside the executions they leave.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        print(f"flowexec {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help=DATABASE_URL_HELP, show_default=False),
    ] = None,
    session_database_url: Annotated[
        str | None,
        typer.Option("--session-database-url", help=SESSION_DATABASE_URL_HELP,
                     show_default=False),
    ] = None,
    table_prefix: Annotated[
        str,
        typer.Option("--table-prefix", envvar="FLOWEXEC_TABLE_PREFIX", help=TABLE_PREFIX_HELP),
    ] = DEFAULT_TABLE_PREFIX,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    debug: Annotated[bool, typer.Option("--debug", help=DEBUG_HELP)] = False,
    log_json: Annotated[bool, typer.Option("--log-json", help=LOG_JSON_HELP)] = False,
    log_level: Annotated[
        LogLevel | None,
        typer.Option("--log-level", case_sensitive=False, help=LOG_LEVEL_HELP,
                     show_default=False),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Run flows durably, and look inside the executions they leave.

    Every option here is accepted after the command too: `flowexec ls f --database-url …`.
    """
    ctx.obj = checked_settings(
        Settings(
            database_url=database_url,
            session_database_url=session_database_url,
            table_prefix=table_prefix,
            json_output=json_output,
            debug=debug,
            log_json=log_json,
            log_level=None if log_level is None else log_level.value,
        ),
    )
    configure_cli_logging(ctx, ctx.obj)


def main() -> None:
    """The console script's entry point."""
    app(prog_name="flowexec")
