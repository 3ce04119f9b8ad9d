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
from typing import Annotated

import typer

from flowexec.cli.apps import load_app
from flowexec.cli.logs import stream_runtime_logs
from flowexec.cli.session import Settings, opened_store, run, settings_of
from flowexec.runtime import Worker
from flowexec.runtime.settings import WorkerSettings
from flowexec.runtime.signals import stop_signals_to

DEFAULTS = WorkerSettings()


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
) -> None:
    """Claim and run executions of an app's flows until SIGTERM or Ctrl-C (graceful)."""
    settings = settings_of(ctx)
    stream_runtime_logs(ctx, debug=settings.debug, json_lines=log_json)
    if processes > 1:
        child_args = ["--concurrency", str(concurrency), "--claim-timeout-ms",
                      str(claim_timeout_ms), "--heartbeat-ms", str(heartbeat_ms),
                      "--shutdown-grace", str(shutdown_grace),
                      "--recovery" if recovery else "--no-recovery"]
        if log_json or settings.log_json:
            child_args.append("--log-json")
        code = run(settings, supervise(settings, app_spec, processes, worker_id, child_args))
        raise typer.Exit(code)

    async def body() -> None:
        app = load_app(app_spec)
        async with opened_store(settings) as store:
            runner = Worker(
                app,
                store,
                worker_id=worker_id,
                concurrency=concurrency,
                claim_timeout_ms=claim_timeout_ms,
                heartbeat_interval_ms=heartbeat_ms,
                shutdown_grace_s=shutdown_grace,
                recovery=recovery,
            )
            await runner.run()

    run(settings, body())


async def supervise(
    settings: Settings,
    app_spec: str,
    processes: int,
    worker_id: str | None,
    child_args: list[str],
) -> int:
    """Start the workers, forward stop signals, and return the first failing exit code (or 0)."""
    load_app(app_spec)  # fail here, once, rather than N times in the children
    env = {**os.environ, "FLOWEXEC_DATABASE_URL": settings.url,  # not on argv: `ps` shows it
           "FLOWEXEC_TABLE_PREFIX": settings.table_prefix}
    base = [sys.executable, "-m", "flowexec"] + (["--debug"] if settings.debug else [])
    children: list[asyncio.subprocess.Process] = []
    for number in range(1, processes + 1):
        ids = [] if worker_id is None else ["--worker-id", f"{worker_id}-{number}"]
        children.append(
            await asyncio.create_subprocess_exec(
                *base, "worker", "--app", app_spec, *child_args, *ids, env=env,
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
