"""`flowexec events`, and what `show` and `submit --wait` print from the event log.

Everything here reads the log by index (store/subscription.py), one page at a time, so a long
log never has to fit in memory: `show` folds it into a progress summary as it pages.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console

from flowexec.cli.render import jsonable, stdout_console
from flowexec.cli.session import JsonFlag, opened_store, run, settings_of, wants_json
from flowexec.errors import ExecutionNotFound
from flowexec.model import EventType, ExecutionEvent, check_id
from flowexec.store.protocol import ExecutionStore
from flowexec.store.subscription import follow_events

FAILURE_TYPES = (EventType.FLOW_FAILED, EventType.FLOW_RETRYING, EventType.NODE_FAILED)
PROGRESS_TYPES = (
    EventType.FLOW_STARTED, EventType.NODE_STARTED, EventType.NODE_COMPLETED,
    EventType.NODE_FAILED, EventType.NODE_REPLAYED, EventType.FLOW_FAILED,
    EventType.FLOW_RETRYING,
)
FINAL_LINES_GRACE_S = 2.0
"""How long `submit --wait` lets the progress printer catch up once the execution ended."""


def events(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="The execution whose events to print.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing live events until it ends.")
    ] = False,
    from_index: Annotated[
        int, typer.Option("--from", min=0, help="Start at this event index.")
    ] = 0,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="Only events of this type; repeatable.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print an execution's event log (JSON lines with --json); --follow until it ends."""
    settings = settings_of(ctx)
    json_out = wants_json(ctx, as_json)

    async def body() -> None:
        check_id(execution_id, "execution id")
        async with opened_store(settings) as store:
            if not follow and await store.get(execution_id) is None:
                raise ExecutionNotFound(execution_id)
            console = stdout_console()
            async for event in follow_events(
                store, execution_id, from_index=from_index, types=types or None, follow=follow
            ):
                print_event(console, event, json_out=json_out)

    run(settings, body())


def print_event(console: Console, event: ExecutionEvent, *, json_out: bool) -> None:
    if json_out:
        print(json.dumps(event.to_json()), flush=True)
        return
    console.print(event_line(event), soft_wrap=True, markup=False, highlight=False)


def event_line(event: ExecutionEvent) -> str:
    """`#3 12:00:01.250 node:completed (attempt 1) node_id=fetch duration_ms=12`; a traceback
    follows on lines of its own."""
    data = dict(event.data)
    traceback = data.pop("traceback", None)
    fields = " ".join(f"{k}={_field(v)}" for k, v in data.items())
    when = event.at.strftime("%H:%M:%S.%f")[:-3]
    line = f"#{event.index} {when} {event.type} (attempt {event.attempt})"
    line += f" {fields}" if fields else ""
    if isinstance(traceback, str):
        line += "\n" + traceback.rstrip()
    return line


def _field(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# ---------------------------------------------------------------- show


@dataclass
class Progress:
    """The latest attempt as its node events tell it, and the last failure's details."""

    running: dict[str, None] = field(default_factory=dict)  # an ordered set of node ids
    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    last_failure: ExecutionEvent | None = None

    def add(self, event: ExecutionEvent) -> None:
        node_id = str(event.data.get("node_id", ""))
        if event.type == EventType.FLOW_STARTED:
            self.running.clear()
            self.done.clear()
            self.failed.clear()
        elif event.type == EventType.NODE_STARTED:
            self.running[node_id] = None
        elif event.type in (EventType.NODE_COMPLETED, EventType.NODE_REPLAYED):
            self.running.pop(node_id, None)
            self.done.add(node_id)  # a replayed node completed in an earlier attempt
        elif event.type == EventType.NODE_FAILED:
            self.running.pop(node_id, None)
            self.failed.add(node_id)
        if event.type in FAILURE_TYPES and "traceback" in event.data:
            self.last_failure = event

    @property
    def traceback(self) -> str | None:
        text = None if self.last_failure is None else self.last_failure.data.get("traceback")
        return text if isinstance(text, str) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "running_nodes": list(self.running),
            "nodes_done": len(self.done),
            "nodes_failed": len(self.failed),
            "last_failure": None if self.last_failure is None else jsonable(
                self.last_failure.to_json()
            ),
        }

    def summary(self) -> str:
        running = ", ".join(self.running) if self.running else "none"
        text = f"progress: {len(self.done)} nodes done; running now: {running}"
        return text + (f"; {len(self.failed)} failed" if self.failed else "")


async def read_progress(store: ExecutionStore, execution_id: str) -> Progress:
    progress = Progress()
    types = [t.value for t in PROGRESS_TYPES]
    async for event in follow_events(store, execution_id, types=types, follow=False):
        progress.add(event)
    return progress


def print_progress(console: Console, progress: Progress) -> None:
    console.print(progress.summary(), markup=False)
    if progress.traceback is not None and progress.last_failure is not None:
        console.print(
            f"last traceback (event #{progress.last_failure.index}, "
            f"{progress.last_failure.type}):", markup=False,
        )
        console.print(progress.traceback.rstrip(), markup=False, highlight=False)


# ---------------------------------------------------------------- submit --wait


async def print_events_until_done(
    store: ExecutionStore, execution_id: str, finished: asyncio.Future[Any]
) -> None:
    """Print the execution's events as they arrive until it ended (or `finished` is done and
    the printer had `FINAL_LINES_GRACE_S` to catch up)."""
    console = stdout_console()

    async def printer() -> None:
        async for event in follow_events(store, execution_id):
            print_event(console, event, json_out=False)

    task = asyncio.create_task(printer())
    try:
        await asyncio.wait([task, finished], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait([task], timeout=FINAL_LINES_GRACE_S)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await task
