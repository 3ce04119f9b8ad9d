"""Commands that change the installation rather than one execution: migrate and recover."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from flowexec.cli.logs import stream_runtime_logs
from flowexec.cli.render import format_duration, print_json, stdout_console
from flowexec.cli.session import (
    JsonFlag,
    graceful_signals,
    opened_store,
    run,
    settings_of,
    wants_json,
)
from flowexec.runtime.recovery import RecoveryService
from flowexec.runtime.settings import RecoverySettings
from flowexec.runtime.worker import default_worker_id

DEFAULTS = RecoverySettings()


def migrate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Create or upgrade flowexec's tables; safe to run again and from several machines."""
    settings = settings_of(ctx)

    async def body() -> None:
        async with opened_store(settings, create=True) as store:
            applied = await store.migrate()
        if wants_json(ctx, as_json):
            print_json(
                {
                    "database_url": settings.shown_url,
                    "table_prefix": settings.table_prefix,
                    "applied": applied,
                }
            )
            return
        where = f"{settings.shown_url} (table prefix {settings.table_prefix})"
        console = stdout_console()
        if applied:
            console.print(f"applied {', '.join(applied)} to {where}", soft_wrap=True)
        else:
            console.print(f"{where} is up to date; nothing applied", soft_wrap=True)

    run(settings, body())


def recover(
    ctx: typer.Context,
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep sweeping every --interval until SIGTERM.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.01, help="Seconds between sweeps with --loop.")
    ] = DEFAULTS.interval_s,
    max_failures: Annotated[
        int, typer.Option("--max-failures", min=1, help="Fail an execution after this many.")
    ] = DEFAULTS.policy.max_failures,
    worker_id: Annotated[
        str | None, typer.Option("--worker-id", help="Recorded as the recoverer.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Put executions whose worker died back in the queue (or fail them after --max-failures)."""
    settings = settings_of(ctx)
    sweeper_id = worker_id or default_worker_id("recover")
    if loop:
        stream_runtime_logs(ctx, debug=settings.debug, json_lines=False)

    async def body() -> None:
        async with opened_store(settings) as store:
            service = RecoveryService(
                store, worker_id=sweeper_id, interval_s=interval, max_failures=max_failures
            )
            if loop:
                stdout_console().print(
                    f"recovering as {sweeper_id} every {interval:g}s on {settings.shown_url}; "
                    "SIGTERM or Ctrl-C stops",
                    soft_wrap=True,
                )
                with graceful_signals(service.stop):
                    await service.run()
                return
            report = await service.sweep_once()
            if report is not None:
                await store.release_recovery_lock(service.lock_id)
        json_out = wants_json(ctx, as_json)
        if report is None:
            if json_out:
                print_json({"leader": False, "worker_id": sweeper_id})
            else:
                stdout_console().print(
                    "another sweeper holds the recovery lock; it does this work, nothing done"
                )
            return
        if json_out:
            print_json(
                {
                    "leader": True,
                    "worker_id": sweeper_id,
                    "expired": report.expired,
                    "requeued": report.requeued,
                    "failed": report.failed,
                    "dead_workers": report.dead_workers,
                    "duration_s": report.duration_s,
                }
            )
            return
        stdout_console().print(
            f"expired {report.expired} claims, requeued {report.requeued} executions, "
            f"failed {report.failed}, removed {report.dead_workers} dead workers from the "
            f"registry (in {format_duration_s(report.duration_s)})"
        )

    run(settings, body())


def format_duration_s(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))
