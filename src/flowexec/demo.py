"""The app and the scenario behind `flowexec demo`: what flowexec promises, shown in seconds.

Two workers share one database. The first runs in a subprocess and takes the two report
executions; the demo kills it with SIGKILL in the middle of their runs. The second runs in
this process: it works through three order trees (each order emits parcels, parcels emit
items, items emit labels: three levels below the order), one of whose nodes fails once and
succeeds on retry, and its recovery service notices the dead worker's expired leases and runs
the reports again. Re-running a report emits its sections again, which lands on the sections
it already made instead of duplicating them.

Run the flows yourself: `flowexec worker --app flowexec.demo:app`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowexec.errors import FlowexecError
from flowexec.model import ExecutionStatus, RecoveryRecord
from flowexec.policy import Backoff, RecoveryPolicy
from flowexec.runtime import App, Client, FlowContext, Worker
from flowexec.runtime.settings import WorkerSettings
from flowexec.store.protocol import ExecutionStore

ORDER_FLOW = "demo.order"
REPORT_FLOW = "demo.report"
SECTION_FLOW = "demo.section"

ORDER_FANOUT = (2, 2, 1)
"""Children each order execution emits at depth 0, 1 and 2: an order tree is 4 levels deep."""
ORDERS = 3
FLAKY_ORDER = 2
"""The order whose `charge-card` node fails on its first attempt."""
REPORTS = 2
SECTIONS_PER_REPORT = 2
FIRST_CRUNCH_S = 30.0
"""A report's first attempt crunches this long, so it is surely mid-run when its worker dies."""

DOOMED_WORKER = "demo-doomed"
RESCUER = "demo-rescuer"
DOOMED_LEASE_MS = 1500
DOOMED_HEARTBEAT_MS = 300
DOOMED_CONCURRENCY = REPORTS
"""Exactly the reports queued before it starts, and nothing else."""
RECOVERY_INTERVAL_S = 0.5
RESCUER_BACKOFF = Backoff(base_ms=200, max_ms=1000)
RESCUER_SETTINGS = WorkerSettings(
    concurrency=8,
    claim_timeout_ms=5000,
    heartbeat_interval_ms=1000,
    recovery=True,
    recovery_interval_s=RECOVERY_INTERVAL_S,
    retry_backoff=RESCUER_BACKOFF,
    recovery_policy=RecoveryPolicy(backoff=RESCUER_BACKOFF),
    shutdown_grace_s=2,
    install_signal_handlers=False,
)
"""Quick retries and sweeps, so that the whole scenario takes seconds."""
START_DEADLINE_S = 30.0
"""How long the doomed worker may take to be mid-run on both reports."""
DEADLINE_S = 60.0
ORDERS_HEAD_START_S = 0.3
"""The orders start running on the rescuer before the doomed worker is killed."""
STOP_WAIT_S = 10.0
STATE_POLL_S = 0.05
PROGRESS_POLL_S = 0.1

app = App()


def order_tree_size() -> int:
    size, level = 1, 1
    for fanout in ORDER_FANOUT:
        level *= fanout
        size += level
    return size


def expected_executions() -> int:
    report_tree = 1 + SECTIONS_PER_REPORT * 2  # each section emits one chart
    return ORDERS * order_tree_size() + REPORTS * report_tree


async def work(seconds: float) -> None:
    """Stands in for real I/O."""
    await asyncio.sleep(seconds)


def charge_card(attempt: int) -> dict[str, Any]:
    """A synchronous node (it runs on a thread) that fails the first time, as networks do."""
    time.sleep(0.05)
    if attempt == 1:
        raise ConnectionError("payment gateway timed out")
    return {"charged": True, "attempt": attempt}


@app.flow(ORDER_FLOW, max_retries=2)
async def order(ctx: FlowContext) -> dict[str, Any]:
    depth = ctx.execution.execution_depth
    await ctx.node("reserve-stock", work, 0.04)
    if depth == 0 and (ctx.integration or {}).get("flaky"):
        await ctx.node("charge-card", charge_card, ctx.attempt)
    fanout = ORDER_FANOUT[depth] if depth < len(ORDER_FANOUT) else 0
    event = ("parcel.packed", "item.picked", "label.printed")[min(depth, 2)]
    for number in range(1, fanout + 1):
        await ctx.emit(event, {"number": number})
    await ctx.node("ship", work, 0.08)
    return {"depth": depth, "emitted": fanout, "attempt": ctx.attempt}


@app.flow(REPORT_FLOW, max_retries=2)
async def report(ctx: FlowContext) -> dict[str, Any]:
    await ctx.node("load-data", work, 0.04)
    for number in range(1, SECTIONS_PER_REPORT + 1):
        await ctx.emit("section", {"section": number}, flow_id=SECTION_FLOW)
    await ctx.node("crunch-numbers", work, FIRST_CRUNCH_S if ctx.attempt == 1 else 0.3)
    return {"sections": SECTIONS_PER_REPORT, "attempt": ctx.attempt}


@app.flow(SECTION_FLOW)
async def section(ctx: FlowContext) -> dict[str, Any]:
    await ctx.node("query", work, 0.05)
    if ctx.execution.execution_depth == 1:
        await ctx.emit("chart", {"chart": 1})
    await ctx.node("render", work, 0.06)
    return {"depth": ctx.execution.execution_depth}


class DemoFailed(FlowexecError):
    """The scenario did not go as it should; the message says where."""


@dataclass
class DemoOutcome:
    order_roots: list[str]
    flaky_root: str
    report_roots: list[str]
    total: int
    completed: int = 0
    retried: list[str] = field(default_factory=list)
    recoveries: list[RecoveryRecord] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def roots(self) -> list[str]:
        return self.report_roots + self.order_roots


@dataclass
class DemoObserver:
    """Where the scenario reports; the CLI draws a progress bar from these."""

    on_event: Callable[[str], None] = lambda text: None
    on_progress: Callable[[int, int], None] = lambda done, total: None


async def run_demo(
    store: ExecutionStore,
    *,
    database_url: str,
    table_prefix: str,
    log_path: Path,
    observer: DemoObserver | None = None,
) -> DemoOutcome:
    """Play the scenario on a migrated store; raise `DemoFailed` if anything goes astray."""
    seen = observer or DemoObserver()
    started = time.monotonic()
    client = Client(store, flows=app)
    reports = [
        await client.create(REPORT_FLOW, owner_id="demo", integration={"report": n})
        for n in range(1, REPORTS + 1)
    ]
    doomed = start_doomed_worker(database_url, table_prefix, log_path)
    rescuer: Worker | None = None
    rescuer_task: asyncio.Task[None] | None = None
    try:
        seen.on_event(f"started worker {DOOMED_WORKER} in a subprocess (pid {doomed.pid})")
        await until_reports_are_mid_run(store, reports, doomed, log_path)
        seen.on_event(
            f"{DOOMED_WORKER} is running both reports; they emitted their sections and are "
            "now crunching numbers"
        )
        rescuer = Worker(app, store, worker_id=RESCUER, settings=RESCUER_SETTINGS)
        rescuer_task = asyncio.create_task(rescuer.run(), name="demo-rescuer")
        seen.on_event(
            f"started worker {RESCUER} in this process; its recovery service sweeps every "
            f"{RECOVERY_INTERVAL_S:g}s"
        )
        orders = [
            await client.create(
                ORDER_FLOW,
                owner_id="demo",
                integration={"customer": f"customer-{n}", "flaky": n == FLAKY_ORDER},
            )
            for n in range(1, ORDERS + 1)
        ]
        outcome = DemoOutcome(orders, orders[FLAKY_ORDER - 1], reports, expected_executions())
        await asyncio.sleep(ORDERS_HEAD_START_S)
        doomed.kill()
        await asyncio.to_thread(doomed.wait)
        seen.on_event(
            f"killed {DOOMED_WORKER} with SIGKILL mid-run: it held both reports; their leases "
            f"lapse within {DOOMED_LEASE_MS / 1000:g}s"
        )
        await watch_until_done(store, outcome, seen, rescuer_task, started)
        outcome.elapsed_s = time.monotonic() - started
        return outcome
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        if rescuer is not None and rescuer_task is not None:
            rescuer.stop(force=True)
            await asyncio.wait({rescuer_task}, timeout=STOP_WAIT_S)


def start_doomed_worker(
    database_url: str, table_prefix: str, log_path: Path
) -> subprocess.Popen[bytes]:
    """`flowexec worker` as a real process, with a short lease so that its death shows quickly.

    Concurrency 2 and no recovery: it takes exactly the two reports queued before it starts,
    and nothing of the sweeper's job.
    """
    env = {**os.environ, "FLOWEXEC_DATABASE_URL": database_url,
           "FLOWEXEC_TABLE_PREFIX": table_prefix}
    command = [
        sys.executable, "-m", "flowexec", "worker", "--app", "flowexec.demo:app",
        "--worker-id", DOOMED_WORKER, "--concurrency", str(DOOMED_CONCURRENCY), "--no-recovery",
        "--claim-timeout-ms", str(DOOMED_LEASE_MS), "--heartbeat-ms", str(DOOMED_HEARTBEAT_MS),
    ]
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # Ctrl-C on the demo is the demo's to handle
        )


async def until_reports_are_mid_run(
    store: ExecutionStore,
    reports: list[str],
    doomed: subprocess.Popen[bytes],
    log_path: Path,
) -> None:
    """Until the doomed worker runs every report and each has emitted its sections."""
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        if doomed.poll() is not None:
            output = await asyncio.to_thread(log_path.read_text, errors="replace")
            tail = output.strip().splitlines()[-3:]
            raise DemoFailed(
                f"worker {DOOMED_WORKER} exited with {doomed.returncode} before the demo killed "
                f"it: {' / '.join(tail) or 'no output'}"
            )
        statuses = await store.get_statuses(reports)
        claims = {c.execution_id for c in await store.get_active_claims(worker_id=DOOMED_WORKER)}
        if all(statuses.get(r) is ExecutionStatus.RUNNING for r in reports) and claims >= set(
            reports
        ):
            children = [await store.get_child_executions(r) for r in reports]
            if all(len(c) == SECTIONS_PER_REPORT for c in children):
                return
        if time.monotonic() > deadline:
            raise DemoFailed(
                f"worker {DOOMED_WORKER} did not start the reports within {START_DEADLINE_S:g} s"
            )
        await asyncio.sleep(STATE_POLL_S)


async def watch_until_done(
    store: ExecutionStore,
    outcome: DemoOutcome,
    seen: DemoObserver,
    rescuer_task: asyncio.Task[None],
    started: float,
) -> None:
    """Report progress, the retry and each recovery, until every execution has completed."""
    recovered: set[int] = set()
    while True:
        if rescuer_task.done():
            error = rescuer_task.exception() if not rescuer_task.cancelled() else None
            raise DemoFailed(f"worker {RESCUER} stopped unexpectedly: {error!r}")
        completed = total = 0
        for root in outcome.roots:
            for node in await store.get_execution_tree(root):
                total += 1
                execution = node.execution
                if execution.status is ExecutionStatus.COMPLETED:
                    completed += 1
                elif execution.status.is_terminal:
                    raise DemoFailed(
                        f"execution {execution.id} ended {execution.status.value}: "
                        f"{execution.error_message}"
                    )
                if (execution.id == outcome.flaky_root and execution.failure_count
                        and not outcome.retried):
                    outcome.retried.append(execution.id)
                    seen.on_event(
                        f"order {execution.id}: {execution.last_failure_reason}; "
                        f"{RESCUER} retries it"
                    )
        for root in outcome.report_roots:
            for record in await store.get_recovery_history(root):
                if record.id not in recovered:
                    recovered.add(record.id)
                    outcome.recoveries.append(record)
                    seen.on_event(
                        f"report {record.execution_id}: {record.recovery_reason} of "
                        f"{record.previous_worker_id}; {record.recovered_by_worker} requeued it"
                    )
        outcome.completed = completed
        seen.on_progress(completed, max(outcome.total, total))
        if completed == outcome.total == total:
            return
        if time.monotonic() - started > DEADLINE_S:
            raise DemoFailed(
                f"the demo did not finish within {DEADLINE_S:g} s: "
                f"{completed} of {outcome.total} executions completed"
            )
        await asyncio.sleep(PROGRESS_POLL_S)
