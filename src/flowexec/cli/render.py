"""How model objects look on a terminal and in `--json` output.

JSON output is plain `json.dumps` on stdout (no colours, no wrapping), so scripts can parse it;
human output goes through rich. Times are UTC; durations come from the database clock.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from rich.console import Console
from rich.text import Text

from flowexec.cli.tables import Column, print_table
from flowexec.model import (
    Execution,
    ExecutionOptions,
    ExecutionStatus,
    RecoveryRecord,
    RootExecution,
)

STATUS_STYLES: dict[ExecutionStatus, str] = {
    ExecutionStatus.CREATED: "cyan",
    ExecutionStatus.RUNNING: "yellow",
    ExecutionStatus.PAUSED: "magenta",
    ExecutionStatus.COMPLETED: "green",
    ExecutionStatus.FAILED: "bold red",
    ExecutionStatus.STOPPED: "bright_black",
}


def stdout_console() -> Console:
    """Made per command, so it writes to whatever `sys.stdout` is at the time (tests swap it)."""
    return Console(file=sys.stdout, highlight=False)


def jsonable(value: Any) -> Any:
    """Model objects as JSON values: ISO-8601 times, enum values, options in their JSON shape."""
    if isinstance(value, ExecutionOptions):
        return value.to_json()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), indent=2, sort_keys=False) + "\n")


def execution_json(execution: Execution, now: datetime) -> dict[str, Any]:
    """Every stored field, plus the run's duration so far in milliseconds."""
    out: dict[str, Any] = jsonable(execution)
    duration = run_duration(execution, now)
    out["duration_ms"] = None if duration is None else round(duration.total_seconds() * 1000)
    return out


def root_json(root: RootExecution, now: datetime) -> dict[str, Any]:
    out = execution_json(root.execution, now)
    out["levels"] = root.levels
    out["total_nested"] = root.total_nested
    return out


def status_text(status: ExecutionStatus) -> Text:
    return Text(status.value, style=STATUS_STYLES[status])


def run_duration(execution: Execution, now: datetime) -> timedelta | None:
    """From the first start to the end, or to now while it is not finished."""
    if execution.started_at is None:
        return None
    end = execution.completed_at
    if end is None:
        end = now if not execution.status.is_terminal else execution.updated_at
    return max(end - execution.started_at, timedelta(0))


def format_duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def format_time(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def format_age(value: datetime | None, now: datetime) -> str:
    """`3.2s ago` / `in 4.0s`, for leases and queues."""
    if value is None:
        return "-"
    delta = now - value
    if delta >= timedelta(0):
        return f"{format_duration(delta)} ago"
    return f"in {format_duration(-delta)}"


def runs_text(execution: Execution, now: datetime) -> str:
    """When a created execution will run: `on start`, `in 9m59s` (a delayed start or a
    retry's backoff), `queued`; `-` once it ran or while a worker holds it."""
    if execution.status is not ExecutionStatus.CREATED or execution.processing_worker_id:
        return "-"
    if execution.available_at is None:
        return "on start"
    if execution.available_at > now:
        return f"in {format_duration(execution.available_at - now)}"
    return "queued"


def event_label(execution: Execution) -> str | None:
    """The event that spawned a child (its first external event's name)."""
    events = execution.external_events or []
    if not events:
        return None
    name = events[0].get("event_name")
    return str(name) if name is not None else None


RECOVERY_COLUMNS = (
    Column("at"),
    Column("execution"),
    Column("reason"),
    Column("from worker", priority=1),
    Column("by", priority=2),
    Column("was", priority=3),
)


def print_recovery_table(
    console: Console, records: list[RecoveryRecord], *, wide: bool = False
) -> None:
    """Who recovered what from which dead worker, fitted to the terminal."""
    rows = [
        [record.recovered_at.strftime("%Y-%m-%d %H:%M:%S"), record.execution_id,
         record.recovery_reason, record.previous_worker_id or "-", record.recovered_by_worker,
         record.previous_status or "-"]
        for record in records
    ]
    print_table(console, RECOVERY_COLUMNS, rows, wide=wide, title="recovery history")
