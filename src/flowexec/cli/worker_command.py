"""`flowexec worker`: run an app's flows until SIGTERM, in one process or a supervised group.

With `--processes N` this process becomes the group's supervisor (runtime/supervisor.py): it
starts N single-process workers (each its own interpreter, so CPU-bound nodes do not share a
GIL), restarts one that dies, passes stop signals on, and stops the group when workers die
faster than `--max-restarts` per `--restart-window`. The workers sit in their own process
group, so Ctrl-C reaches them once, through the supervisor, and stays graceful; they stop at
once when the supervisor is killed (runtime/parent_watch.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer

from flowexec.cli.apps import load_app
from flowexec.cli.logs import stream_runtime_logs
from flowexec.cli.session import EXIT_BAD_INPUT, fail, one_line, opened_store, run, settings_of
from flowexec.errors import ValidationError
from flowexec.runtime import Worker
from flowexec.runtime.parent_watch import ParentWatch, supervisor_pid
from flowexec.runtime.settings import WorkerSettings
from flowexec.runtime.supervisor import Supervisor, SupervisorSettings
from flowexec.runtime.tasks import end_tasks

DEFAULTS = WorkerSettings()
GROUP_DEFAULTS = SupervisorSettings()


def worker(
    ctx: typer.Context,
    app_spec: Annotated[str, typer.Option("--app", help="module:app, the App whose flows to run.")],
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Executions run at once per process.")
    ] = DEFAULTS.concurrency,
    processes: Annotated[
        int, typer.Option("--processes", min=1, max=256, help="Worker processes to start.")
    ] = 1,
    worker_id: Annotated[
        str | None,
        typer.Option("--worker-id", help="Default: host-pid-random; with --processes, -1, -2…"),
    ] = None,
    claim_timeout_ms: Annotated[
        int, typer.Option("--claim-timeout-ms", min=1, help="Lease length; renewed by heartbeats.")
    ] = DEFAULTS.claim_timeout_ms,
    heartbeat_ms: Annotated[
        int, typer.Option("--heartbeat-ms", min=1, help="Heartbeat interval; below the lease.")
    ] = DEFAULTS.heartbeat_interval_ms,
    shutdown_grace: Annotated[
        float, typer.Option("--shutdown-grace", min=0, help="Seconds runs get to finish on stop.")
    ] = DEFAULTS.shutdown_grace_s,
    recovery: Annotated[
        bool, typer.Option("--recovery/--no-recovery", help="Take part in recovery sweeps.")
    ] = DEFAULTS.recovery,
    recovery_interval: Annotated[
        float, typer.Option("--recovery-interval", min=0.01, help="Seconds between sweeps.")
    ] = DEFAULTS.recovery_interval_s,
    max_runs_per_process: Annotated[
        int | None,
        typer.Option(
            "--max-runs-per-process", min=1,
            help="Replace a worker process after it started this many runs.",
        ),
    ] = None,
    max_restarts: Annotated[
        int, typer.Option("--max-restarts", min=0, help="Deaths per window before giving up.")
    ] = GROUP_DEFAULTS.max_restarts,
    restart_window: Annotated[
        float, typer.Option("--restart-window", min=0.01, help="Seconds of --max-restarts.")
    ] = GROUP_DEFAULTS.restart_window_s,
    log_json: Annotated[bool, typer.Option("--log-json", help="Logs as JSON lines.")] = False,
) -> None:
    """Claim and run executions of an app's flows until SIGTERM or Ctrl-C (graceful)."""
    settings = settings_of(ctx)
    stream_runtime_logs(ctx, debug=settings.debug, json_lines=log_json)
    try:  # checked once here, rather than by every child of a group
        worker_settings = WorkerSettings(
            concurrency=concurrency,
            claim_timeout_ms=claim_timeout_ms,
            heartbeat_interval_ms=heartbeat_ms,
            shutdown_grace_s=shutdown_grace,
            recovery=recovery,
            recovery_interval_s=recovery_interval,
            max_runs=max_runs_per_process,
        )
        group_settings = SupervisorSettings(
            processes=processes, max_restarts=max_restarts, restart_window_s=restart_window
        )
    except ValidationError as exc:
        fail(one_line(exc), EXIT_BAD_INPUT)
    # Recycling needs someone to start the replacement: even one process gets a supervisor.
    recycled = max_runs_per_process is not None and supervisor_pid() is None
    if processes > 1 or recycled:
        child_args = ["--concurrency", str(concurrency), "--claim-timeout-ms",
                      str(claim_timeout_ms), "--heartbeat-ms", str(heartbeat_ms),
                      "--shutdown-grace", str(shutdown_grace),
                      "--recovery-interval", str(recovery_interval),
                      "--recovery" if recovery else "--no-recovery"]
        if max_runs_per_process is not None:
            child_args += ["--max-runs-per-process", str(max_runs_per_process)]
        if log_json:
            child_args.append("--log-json")
        env = {**os.environ, "FLOWEXEC_DATABASE_URL": settings.url,  # not on argv: `ps` shows it
               "FLOWEXEC_TABLE_PREFIX": settings.table_prefix}
        base = [sys.executable, "-m", "flowexec", *(["--debug"] if settings.debug else []),
                "worker", "--app", app_spec, *child_args]

        def command(slot: int) -> list[str]:
            return base if worker_id is None else [*base, "--worker-id", f"{worker_id}-{slot}"]

        group = Supervisor(command, env=env, settings=group_settings)

        async def supervise() -> int:
            load_app(app_spec)  # fail here, once, rather than N times in the children
            async with opened_store(settings):  # likewise: reachable, and migrated
                pass
            return await group.run()

        raise typer.Exit(run(settings, supervise()))

    async def body() -> None:
        app = load_app(app_spec)
        async with opened_store(settings) as store:
            await run_supervised(
                Worker(app, store, worker_id=worker_id, settings=worker_settings)
            )

    run(settings, body())


async def run_supervised(runner: Worker) -> None:
    """Run the worker; under a supervisor, stop it at once when the supervisor is gone."""
    parent = supervisor_pid()
    if parent is None:
        await runner.run()
        return
    watch = asyncio.create_task(ParentWatch(parent, lambda: runner.stop(force=True)).run())
    try:
        await runner.run()
    finally:
        await end_tasks([watch], grace_s=0)
