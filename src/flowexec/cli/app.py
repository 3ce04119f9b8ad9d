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

from flowexec.cli.logs import configure_cli_logging
from flowexec.cli.session import EXIT_BAD_INPUT, EXIT_FAILED, Settings, fail, one_line
from flowexec.errors import ValidationError
from flowexec.model import DEFAULT_TABLE_PREFIX, check_table_prefix
from flowexec.store.urls import DEFAULT_URL, redact
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
    "ls": ("flowexec.cli.inspect_commands", "list_roots"),
    "show": ("flowexec.cli.inspect_commands", "show_execution"),
    "tree": ("flowexec.cli.inspect_commands", "show_tree"),
    "events": ("flowexec.cli.events_command", "events"),
    "claims": ("flowexec.cli.inspect_commands", "list_claims"),
    "stats": ("flowexec.cli.inspect_commands", "show_stats"),
    "schedules": ("flowexec.cli.schedules_command", "list_schedules"),
    "demo": ("flowexec.cli.demo_command", "run_demo_command"),
}
"""Each command's name, and the module and function that run it: a new command is one line."""


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
        single = typer.Typer(add_completion=False)
        single.command(cmd_name)(getattr(module, function_name))
        return typer.main.get_command(single)

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
        typer.Option(
            "--database-url",
            help="postgresql://… or sqlite:///path. Default: $FLOWEXEC_DATABASE_URL, "
            f"else {DEFAULT_URL}.",
            show_default=False,
        ),
    ] = None,
    table_prefix: Annotated[
        str,
        typer.Option(
            "--table-prefix",
            envvar="FLOWEXEC_TABLE_PREFIX",
            help="Prefix of flowexec's tables, one per installation.",
        ),
    ] = DEFAULT_TABLE_PREFIX,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable output for every command.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Debug logs, and tracebacks instead of one-line errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Run flows durably, and look inside the executions they leave."""
    configure_cli_logging(ctx, debug)
    try:
        check_table_prefix(table_prefix)
    except ValidationError as exc:
        fail(f"--table-prefix: {exc}", EXIT_BAD_INPUT)
    ctx.obj = Settings(
        database_url=database_url,
        table_prefix=table_prefix,
        json_output=json_output,
        debug=debug,
    )


def main() -> None:
    """The console script's entry point."""
    app(prog_name="flowexec")
