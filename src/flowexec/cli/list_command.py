"""`flowexec ls`: root executions, newest first, one page at a time, with a cursor.

A flow's roots, or with `--status` those in one status, across flows or within one. The
store never migrates here: pointing `ls` at the wrong database creates nothing.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flowexec.cli.cursor import PageCursor
from flowexec.cli.render import (
    format_age,
    format_duration,
    print_json,
    root_json,
    run_duration,
    runs_text,
    status_text,
    stdout_console,
)
from flowexec.cli.session import JsonFlag, UsageError, opened_store, run, settings_of, wants_json
from flowexec.cli.tables import Cell, Column, WideFlag, print_table
from flowexec.model import MAX_LIMIT, ExecutionStatus, check_id


def list_roots(
    ctx: typer.Context,
    flow_id: Annotated[
        str | None,
        typer.Argument(help="The flow whose root executions to list (optional with --status)."),
    ] = None,
    status: Annotated[
        ExecutionStatus | None,
        typer.Option("--status", help="Only roots in this status; across flows without FLOW_ID."),
    ] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_LIMIT - 1, help="Rows per page.")
    ] = 20,
    after: Annotated[
        str | None, typer.Option("--after", help="The cursor a previous page printed.")
    ] = None,
    as_json: JsonFlag = False,
    wide: WideFlag = False,
) -> None:
    """List root executions, newest first, one page at a time: a flow's, or with --status
    those in one status (across flows unless FLOW_ID is given)."""
    settings = settings_of(ctx)

    async def body() -> None:
        if flow_id is None and status is None:
            raise UsageError("give the flow whose executions to list, or --status (or both)")
        if flow_id is not None:
            check_id(flow_id, "flow_id")
        if status is not None and owner is not None:
            raise UsageError("--owner lists one flow's roots; it does not combine with --status")
        scope = listing_scope(flow_id, status)
        position = None if after is None else PageCursor.decode(after, scope).as_position()
        async with opened_store(settings) as store:
            # One row more than the page tells whether a next page exists.
            if status is None:
                assert flow_id is not None
                rows = await store.get_root_executions(
                    flow_id, limit + 1, position, owner_id=owner
                )
            else:
                rows = await store.get_roots_in_status(
                    status.value, limit + 1, position, flow_id=flow_id
                )
            now = await store.now()
        page = rows[:limit]
        next_cursor = (
            PageCursor.after(page[-1], scope).encode() if len(rows) > limit else None
        )
        what = " ".join(
            part for part in (
                None if status is None else status.value,
                "root executions",
                None if flow_id is None else f"of flow {flow_id}",
            ) if part
        )
        if wants_json(ctx, as_json):
            print_json(
                {"executions": [root_json(r, now) for r in page], "next_cursor": next_cursor}
            )
            return
        console = stdout_console()
        if not page:
            more = "more " if position is not None else ""
            console.print(f"no {more}{what}")
            return
        cells: list[list[Cell]] = [
            [r.execution.id, status_text(r.execution.status),
             format_age(r.execution.created_at, now), runs_text(r.execution, now),
             r.execution.owner_id,
             format_duration(run_duration(r.execution, now)), str(r.total_nested),
             str(r.levels)]
            for r in page
        ]
        columns = ROOT_COLUMNS if flow_id is not None else (*ROOT_COLUMNS, FLOW_COLUMN)
        if flow_id is None:
            for cell_row, root in zip(cells, page, strict=True):
                cell_row.append(root.execution.flow_id)
        print_table(console, columns, cells, wide=wide, title=what)
        if next_cursor is None:
            console.print(f"{len(page)} shown; no more pages")
        else:
            console.print(f"{len(page)} shown; next page: --after {next_cursor}", soft_wrap=True)

    run(settings, body())


ROOT_COLUMNS = (
    Column("id"),
    Column("status"),
    Column("created", priority=1),
    Column("runs", priority=2),
    Column("owner", priority=2, folds=True),
    Column("duration", priority=3, justify="right"),
    Column("nested", priority=4, justify="right"),
    Column("levels", priority=5, justify="right"),
)

FLOW_COLUMN = Column("flow", priority=1, folds=True)
"""Shown when the listing spans flows."""


def listing_scope(flow_id: str | None, status: ExecutionStatus | None) -> str:
    """What an `ls` cursor belongs to: a flow, or a status (within a flow)."""
    if status is None:
        assert flow_id is not None
        return flow_id
    return f"status={status.value}" + ("" if flow_id is None else f",flow={flow_id}")
