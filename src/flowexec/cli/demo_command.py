"""`flowexec demo`: the scenario of `flowexec.demo` with a progress bar, then what it left.

By default everything happens in a temporary directory that is removed at the end, so the
demo leaves nothing behind; `--keep` keeps it (and says where), `--database-url` uses a real
database and says what stays there.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from flowexec import demo
from flowexec.cli.inspect_commands import rich_tree
from flowexec.cli.logs import quiet_runtime_logs
from flowexec.cli.render import jsonable, print_json, print_recovery_table, stdout_console
from flowexec.cli.session import JsonFlag, Settings, opened_store, run, settings_of, wants_json
from flowexec.store.protocol import ExecutionStore
from flowexec.store.urls import redact


def run_demo_command(
    ctx: typer.Context,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary database and print its path.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run an example app: nested executions, a retry, a worker killed and recovered.

    Throwaway SQLite unless --database-url is given; FLOWEXEC_DATABASE_URL is not read.
    With --json, no narration: one JSON object with what the demo did and left.
    """
    # Not reading the variable keeps demo executions out of a configured production database.
    settings = settings_of(ctx)
    json_output = wants_json(ctx, as_json)
    if not settings.debug:
        quiet_runtime_logs(ctx)
    workdir = Path(tempfile.mkdtemp(prefix="flowexec-demo-"))
    throwaway = settings.database_url is None
    url = f"sqlite:///{workdir / 'demo.db'}" if throwaway else settings.url
    console = None if json_output else stdout_console()
    try:
        outcome = run(settings, play(settings, url, workdir, console))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        if console is not None and keep:
            console.print(f"kept the demo's directory {workdir}", soft_wrap=True)
            if throwaway:
                console.print(
                    f"look inside: flowexec --database-url {url} ls {demo.ORDER_FLOW}",
                    soft_wrap=True,
                )
        elif console is not None and throwaway:
            console.print(f"removed the throwaway database in {workdir}", soft_wrap=True)
    if json_output:
        print_json(outcome_json(outcome, url=None if throwaway and not keep else redact(url),
                                kept_directory=str(workdir) if keep else None))


def outcome_json(
    outcome: demo.DemoOutcome, *, url: str | None, kept_directory: str | None
) -> dict[str, Any]:
    """What the demo did, and where it is still to be seen (`database_url` null: removed)."""
    return {
        "total": outcome.total,
        "completed": outcome.completed,
        "order_roots": outcome.order_roots,
        "report_roots": outcome.report_roots,
        "flaky_root": outcome.flaky_root,
        "retried": outcome.retried,
        "recoveries": jsonable(outcome.recoveries),
        "elapsed_s": round(outcome.elapsed_s, 3),
        "database_url": url,
        "kept_directory": kept_directory,
    }


async def play(
    settings: Settings, url: str, workdir: Path, console: Console | None
) -> demo.DemoOutcome:
    """The scenario, narrated on `console` (None: silently)."""
    scoped = Settings(url, settings.table_prefix, settings.json_output, settings.debug)
    async with opened_store(scoped, create=True) as store:
        applied = await store.migrate()
        if console is None:
            return await demo.run_demo(
                store, database_url=url, table_prefix=settings.table_prefix,
                log_path=workdir / "doomed-worker.log",
            )
        shown = redact(url)
        where = "a throwaway SQLite database" if settings.database_url is None else shown
        console.print(
            f"[bold]flowexec demo[/]: {demo.expected_executions()} executions on {where}, "
            "two workers, one of them killed mid-run",
            soft_wrap=True,
        )
        if applied and settings.database_url is not None:
            console.print(
                f"created flowexec's tables (prefix {settings.table_prefix}) in {shown}",
                soft_wrap=True,
            )
        with Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("executions completed", total=demo.expected_executions())

            def on_event(text: str) -> None:
                progress.console.print(f"  [cyan]•[/] {text}", soft_wrap=True)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            outcome = await demo.run_demo(
                store,
                database_url=url,
                table_prefix=settings.table_prefix,
                log_path=workdir / "doomed-worker.log",
                observer=demo.DemoObserver(on_event, on_progress),
            )
        await print_results(store, outcome, console)
    if settings.database_url is not None:
        console.print(
            f"the demo's {outcome.total} executions stay in {shown} "
            f"(table prefix {settings.table_prefix}); e.g. flowexec tree {outcome.flaky_root}",
            soft_wrap=True,
        )
    return outcome


async def print_results(
    store: ExecutionStore, outcome: demo.DemoOutcome, console: Console
) -> None:
    now = await store.now()
    console.print()
    console.print("[bold]an order that failed once and succeeded on retry[/]")
    console.print(rich_tree(await store.get_execution_tree(outcome.flaky_root), now))
    console.print()
    console.print(f"[bold]a report whose worker was killed, finished by {demo.RESCUER}[/]")
    console.print(rich_tree(await store.get_execution_tree(outcome.report_roots[0]), now))
    console.print()
    print_recovery_table(console, outcome.recoveries)
    console.print(summary_line(outcome), soft_wrap=True)


def summary_line(outcome: demo.DemoOutcome) -> str:
    levels = len(demo.ORDER_FANOUT)
    recovered = len({r.execution_id for r in outcome.recoveries})
    return (
        f"demo: {outcome.completed}/{outcome.total} executions completed "
        f"({len(outcome.roots)} trees, up to {levels} levels deep); "
        f"{len(outcome.retried)} retried after a failure; {recovered} recovered from killed "
        f"worker {demo.DOOMED_WORKER} by {demo.RESCUER}; {outcome.elapsed_s:.1f}s"
    )
