"""`flowexec workers`, and what other commands read from the worker registry: the queued flows
no live worker serves (`stats`) and `submit`'s refusal of a flow nobody runs (a typo would
otherwise wait forever in the queue)."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.table import Table
from rich.text import Text

from flowexec.cli.render import format_age, jsonable, print_json, stdout_console
from flowexec.cli.session import (
    EXIT_FAILED,
    JsonFlag,
    fail,
    opened_store,
    run,
    settings_of,
    wants_json,
)
from flowexec.model import check_id
from flowexec.model.workers import WorkerInfo
from flowexec.store.protocol import ExecutionStore
from flowexec.store.workers import SERVED_RECENTLY, served_recently

FIXED_COLUMNS_WIDTH = 40
"""pid, concurrency, last seen and state, with the gaps between all seven columns."""
ROOM_FOR_FLOWS = 16
"""The least width left for the host and flow columns, which wrap."""


def list_workers(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The registered worker processes: flows, concurrency, and when each was last seen."""
    settings = settings_of(ctx)

    async def body() -> tuple[list[WorkerInfo], datetime]:
        async with opened_store(settings) as store:
            return await store.get_workers(), await store.now()

    workers, now = run(settings, body())
    if wants_json(ctx, as_json):
        print_json([
            {**jsonable(w), "last_seen_age_s": (now - w.last_seen_at).total_seconds()}
            for w in workers
        ])
        return
    console = stdout_console()
    if not workers:
        console.print("no workers registered")
        return
    longest = max(len(w.worker_id) for w in workers)
    if longest + FIXED_COLUMNS_WIDTH + ROOM_FOR_FLOWS <= console.width:
        console.print(_worker_table(workers, now, longest))
        return
    for w in workers:  # too narrow for a table that keeps every id whole: a block each
        console.print(Text(w.worker_id, style="bold"), soft_wrap=True)
        summary = _state(w)
        summary.append(f" · pid {w.pid} on {w.host} · concurrency {w.concurrency} · "
                       f"seen {format_age(w.last_seen_at, now)}")
        console.print(Text("  ").append_text(summary))
        console.print(f"  flows: {', '.join(w.flow_ids)}", highlight=False)


def _worker_table(workers: list[WorkerInfo], now: datetime, longest: int) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("worker", min_width=longest, no_wrap=True)
    table.add_column("host", overflow="fold")
    table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("flows", overflow="fold")
    table.add_column("conc", justify="right", no_wrap=True)
    table.add_column("last seen", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for w in workers:
        table.add_row(
            w.worker_id, w.host, str(w.pid), ", ".join(w.flow_ids), str(w.concurrency),
            format_age(w.last_seen_at, now), _state(w),
        )
    return table


def _state(worker: WorkerInfo) -> Text:
    return Text("live", style="green") if worker.live else Text("dead", style="bold red")


def unserved_lines(unserved: dict[str, int]) -> list[str]:
    """`stats`'s warning lines: one per flow that waits for a worker."""
    return [
        f"no live worker serves {flow_id}: {count} queued" for flow_id, count in unserved.items()
    ]


async def refuse_unserved_flow(store: ExecutionStore, flow_id: str) -> str | None:
    """`submit`'s check: fail when workers ran other flows lately but none runs `flow_id`.

    With no flow served at all lately (a new installation, workers not started yet), the
    execution is accepted: there is nothing to compare the flow id with. The warning to print
    once it is submitted is returned.
    """
    check_id(flow_id, "flow_id")  # a malformed id is bad input, not an unserved flow
    known = await store.get_known_flows()
    now = await store.now()
    if served_recently(flow_id, known, now):
        return None
    recent = sorted(f.flow_id for f in known if served_recently(f.flow_id, known, now))
    hours = int(SERVED_RECENTLY.total_seconds() // 3600)
    if not recent:
        return (
            f"warning: no worker has run any flow in the last {hours} h; {flow_id!r} waits in "
            "the queue until a worker for it starts"
        )
    fail(
        f"no live worker runs flow {flow_id!r}, and none did in the last {hours} h; "
        f"flows workers run: {', '.join(recent)} (--force submits it anyway)",
        EXIT_FAILED,
    )
