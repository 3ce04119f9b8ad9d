"""The `flowexec` command: global options, and every command registered in one place."""

from __future__ import annotations

from typing import Annotated

import typer

from flowexec import __version__
from flowexec.cli import (
    demo_command,
    events_command,
    inspect_commands,
    lifecycle_commands,
    operate_commands,
    worker_command,
)
from flowexec.cli.logs import configure_cli_logging
from flowexec.cli.session import EXIT_BAD_INPUT, Settings, fail
from flowexec.errors import ValidationError
from flowexec.model import DEFAULT_TABLE_PREFIX, check_table_prefix
from flowexec.store.urls import DEFAULT_URL

EPILOG = (
    "Exit codes: 0 ok; 1 the operation failed (unknown id, illegal transition, a run that "
    "failed); 2 bad input (URL, JSON, values); 3 database unreachable or not migrated."
)

app = typer.Typer(
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


app.command("migrate")(operate_commands.migrate)
app.command("worker")(worker_command.worker)
app.command("recover")(operate_commands.recover)
app.command("submit")(lifecycle_commands.submit)
app.command("start")(lifecycle_commands.start)
app.command("stop")(lifecycle_commands.stop)
app.command("pause")(lifecycle_commands.pause)
app.command("resume")(lifecycle_commands.resume)
app.command("ls")(inspect_commands.list_roots)
app.command("show")(inspect_commands.show_execution)
app.command("tree")(inspect_commands.show_tree)
app.command("events")(events_command.events)
app.command("claims")(inspect_commands.list_claims)
app.command("stats")(inspect_commands.show_stats)
app.command("demo")(demo_command.run_demo_command)


def main() -> None:
    """The console script's entry point."""
    app(prog_name="flowexec")
