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
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from flowexec.cli.apps import load_app
from flowexec.cli.logs import stream_runtime_logs
from flowexec.cli.session import EXIT_BAD_INPUT, fail, one_line, opened_store, run, settings_of
from flowexec.errors import ConfigError, ValidationError
from flowexec.runtime import Worker
from flowexec.runtime.observer import NO_OBSERVER
from flowexec.runtime.parent_watch import ParentWatch, supervisor_pid
from flowexec.runtime.settings import WorkerSettings
from flowexec.runtime.supervisor import Supervisor, SupervisorSettings
from flowexec.runtime.tasks import end_tasks

if TYPE_CHECKING:
    from flowexec.metrics import FlowexecMetrics
    from flowexec.store import ExecutionStore

DEFAULTS = WorkerSettings()
DEFAULT_METRICS_HOST = "127.0.0.1"
MAX_PORT = 65535
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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", min=1, max=65535,
            help="Serve Prometheus metrics at /metrics on this port; with --processes N, "
            "worker k serves on this port + k - 1.",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="The address the metrics server binds.")
    ] = DEFAULT_METRICS_HOST,
) -> None:
    """Claim and run executions of an app's flows until SIGTERM or Ctrl-C (graceful)."""
    settings = settings_of(ctx)
    stream_runtime_logs(ctx, debug=settings.debug, json_lines=log_json)
    check_metrics_address(metrics_host, metrics_port, processes)
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
        if log_json or settings.log_json:
            child_args.append("--log-json")
        env = {**os.environ, "FLOWEXEC_DATABASE_URL": settings.url,  # not on argv: `ps` shows it
               "FLOWEXEC_TABLE_PREFIX": settings.table_prefix}
        base = [sys.executable, "-m", "flowexec", *(["--debug"] if settings.debug else []),
                "worker", "--app", app_spec, *child_args]

        def command(slot: int) -> list[str]:
            own = [] if worker_id is None else ["--worker-id", f"{worker_id}-{slot}"]
            if metrics_port is not None:
                own += ["--metrics-host", metrics_host,
                        "--metrics-port", str(metrics_port + slot - 1)]
            return [*base, *own]

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
            metrics = None if metrics_port is None else worker_metrics(store, app.flow_ids)
            runner = Worker(
                app,
                store,
                worker_id=worker_id,
                settings=worker_settings,
                observer=NO_OBSERVER if metrics is None else metrics,
            )
            async with metrics_served(metrics, metrics_host, metrics_port):
                await run_supervised(runner)

    run(settings, body())


def check_metrics_address(host: str, port: int | None, processes: int) -> None:
    """Usage errors for a metrics address that cannot work, before anything starts."""
    if not host.strip() or host != host.strip():
        raise typer.BadParameter(
            "must be an address or host name to bind, e.g. 127.0.0.1 or 0.0.0.0",
            param_hint="'--metrics-host'",
        )
    if port is not None and port + processes - 1 > MAX_PORT:
        raise typer.BadParameter(
            f"{processes} processes serve metrics on ports {port} to {port + processes - 1}, "
            f"past {MAX_PORT}",
            param_hint="'--metrics-port'",
        )


def worker_metrics(store: ExecutionStore, flow_ids: Sequence[str]) -> FlowexecMetrics:
    """The worker process's metrics, or a `ConfigError` saying which extra to install."""
    try:
        from flowexec.metrics import FlowexecMetrics
    except ImportError as exc:
        raise ConfigError(
            f"--metrics-port needs prometheus-client ({exc}): pip install 'flowexec[metrics]'"
        ) from None
    return FlowexecMetrics(store, flows=flow_ids)


@asynccontextmanager
async def metrics_served(
    metrics: FlowexecMetrics | None, host: str, port: int | None
) -> AsyncIterator[None]:
    """The worker's metrics served over HTTP for the block, when it has any."""
    if metrics is None or port is None:
        yield
        return
    from flowexec.metrics import serve_metrics

    async with serve_metrics(metrics, host, port):
        yield


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
