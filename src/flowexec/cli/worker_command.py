"""`flowexec worker`: run an app's flows until SIGTERM, in one process or a supervised few.

With `--processes N` this process becomes a small supervisor: it starts N single-process
workers (each its own interpreter, so CPU-bound nodes do not share a GIL), passes stop signals
on, and exits as soon as one of them dies, so that systemd, Kubernetes or whatever started it
restarts the group instead of running short-handed without noticing. The workers sit in their
own process group: Ctrl-C reaches them once, through the supervisor, and so stays graceful.
Stop the supervisor with SIGTERM; a SIGKILL cannot be passed on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from flowexec.cli.apps import load_app
from flowexec.cli.logs import stream_runtime_logs
from flowexec.cli.session import Settings, opened_store, run, settings_of
from flowexec.errors import ConfigError
from flowexec.runtime import Worker
from flowexec.runtime.observer import NO_OBSERVER
from flowexec.runtime.settings import WorkerSettings
from flowexec.runtime.signals import stop_signals_to

if TYPE_CHECKING:
    from flowexec.metrics import FlowexecMetrics
    from flowexec.store import ExecutionStore

DEFAULTS = WorkerSettings()
DEFAULT_METRICS_HOST = "127.0.0.1"
MAX_PORT = 65535


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
    if processes > 1:
        child_args = ["--concurrency", str(concurrency), "--claim-timeout-ms",
                      str(claim_timeout_ms), "--heartbeat-ms", str(heartbeat_ms),
                      "--shutdown-grace", str(shutdown_grace),
                      "--recovery" if recovery else "--no-recovery"]
        if log_json:
            child_args.append("--log-json")
        code = run(
            settings,
            supervise(settings, app_spec, processes, worker_id, child_args,
                      metrics=None if metrics_port is None else (metrics_host, metrics_port)),
        )
        raise typer.Exit(code)

    async def body() -> None:
        app = load_app(app_spec)
        async with opened_store(settings) as store:
            metrics = None if metrics_port is None else worker_metrics(store, app.flow_ids)
            runner = Worker(
                app,
                store,
                worker_id=worker_id,
                concurrency=concurrency,
                claim_timeout_ms=claim_timeout_ms,
                heartbeat_interval_ms=heartbeat_ms,
                shutdown_grace_s=shutdown_grace,
                recovery=recovery,
                observer=NO_OBSERVER if metrics is None else metrics,
            )
            async with metrics_served(metrics, metrics_host, metrics_port):
                await runner.run()

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


async def supervise(
    settings: Settings,
    app_spec: str,
    processes: int,
    worker_id: str | None,
    child_args: list[str],
    *,
    metrics: tuple[str, int] | None = None,
) -> int:
    """Start the workers, forward stop signals, and return the first failing exit code (or 0)."""
    load_app(app_spec)  # fail here, once, rather than N times in the children
    env = {**os.environ, "FLOWEXEC_DATABASE_URL": settings.url,  # not on argv: `ps` shows it
           "FLOWEXEC_TABLE_PREFIX": settings.table_prefix}
    base = [sys.executable, "-m", "flowexec"] + (["--debug"] if settings.debug else [])
    children: list[asyncio.subprocess.Process] = []
    for number in range(1, processes + 1):
        own = [] if worker_id is None else ["--worker-id", f"{worker_id}-{number}"]
        if metrics is not None:
            own += ["--metrics-host", metrics[0], "--metrics-port", str(metrics[1] + number - 1)]
        children.append(
            await asyncio.create_subprocess_exec(
                *base, "worker", "--app", app_spec, *child_args, *own, env=env,
                process_group=0,
            )
        )
    log = logging.getLogger("flowexec.cli")
    log.info("started %d worker processes: %s", processes, [c.pid for c in children])
    stopping = False
    first_failure = 0

    def forward(sig: signal.Signals) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.returncode is None:
                child.send_signal(sig)

    async def watch(child: asyncio.subprocess.Process) -> None:
        """The first child to die takes the others down with it."""
        nonlocal first_failure
        code = await child.wait()
        if code != 0 and not first_failure:
            first_failure = code if code > 0 else 128 - code
        if not stopping:
            log.error("worker process %d exited with %d: stopping the others", child.pid, code)
            forward(signal.SIGTERM)

    with stop_signals_to(forward):
        async with asyncio.TaskGroup() as watching:
            for child in children:
                watching.create_task(watch(child))
    return first_failure
