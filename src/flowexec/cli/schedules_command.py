"""`flowexec schedules --app module:app`: the app's cron schedules, their last and next runs.

Schedules live in code, so the command needs the app; the last run of each comes from the
database (its latest filled slot), the next from the cron expression after now.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from flowexec.cli.apps import load_app
from flowexec.cli.render import format_age, format_time, print_json, stdout_console
from flowexec.cli.session import JsonFlag, opened_store, run, settings_of, wants_json


def list_schedules(
    ctx: typer.Context,
    app_spec: Annotated[
        str, typer.Option("--app", help="module:app, the app that declares the schedules.")
    ],
    as_json: JsonFlag = False,
) -> None:
    """List the app's cron schedules with their last and next runs."""
    settings = settings_of(ctx)

    async def body() -> None:
        app = load_app(app_spec)
        schedules = app.schedules
        async with opened_store(settings) as store:
            last = await store.get_last_slots([s.schedule_id for s in schedules])
            now = await store.now()
        rows: list[dict[str, Any]] = []
        for schedule in schedules:
            filled = last.get(schedule.schedule_id)
            rows.append({
                "schedule_id": schedule.schedule_id,
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "flow_id": schedule.flow_id,
                "missed": schedule.missed.value,
                "last_slot_at": None if filled is None else filled.slot_at,
                "last_execution_id": None if filled is None else filled.execution_id,
                "next_slot_at": schedule.next_slot(now),
            })
        if wants_json(ctx, as_json):
            print_json({"schedules": rows})
            return
        console = stdout_console()
        if not rows:
            console.print(f"{app_spec} declares no schedules")
            return
        table = Table(title="schedules", title_justify="left")
        for name in ("schedule", "cron", "flow", "missed", "last run", "execution", "next run"):
            table.add_column(name, no_wrap=name in ("schedule", "execution"))
        for row in rows:
            table.add_row(
                row["schedule_id"],
                f"{row['cron']} ({row['timezone']})",
                row["flow_id"],
                row["missed"],
                format_age(row["last_slot_at"], now),
                row["last_execution_id"] or "-",
                f"{format_time(row['next_slot_at'])} ({format_age(row['next_slot_at'], now)})",
            )
        console.print(table)

    run(settings, body())
