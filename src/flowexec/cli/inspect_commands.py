"""Read-only commands for operators: ls, show, tree, claims, stats.

They open the store without migrating it, so pointing one at the wrong database never
creates tables there; an unmigrated database is reported as such.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from flowexec.cli.cursor import PageCursor
from flowexec.cli.events_command import print_progress, read_progress
from flowexec.cli.render import (
    STATUS_STYLES,
    event_label,
    execution_json,
    format_age,
    format_duration,
    jsonable,
    print_json,
    recovery_table,
    root_json,
    run_duration,
    runs_text,
    status_text,
    stdout_console,
)
from flowexec.cli.session import JsonFlag, opened_store, run, settings_of, wants_json
from flowexec.errors import ExecutionNotFound
from flowexec.model import MAX_LIMIT, MAX_TREE_NODES, Execution, ExecutionTreeNode, check_id


def list_roots(
    ctx: typer.Context,
    flow_id: Annotated[str, typer.Argument(help="The flow whose root executions to list.")],
    owner: Annotated[str | None, typer.Option("--owner", help="Only this owner's.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_LIMIT - 1, help="Rows per page.")
    ] = 20,
    after: Annotated[
        str | None, typer.Option("--after", help="The cursor a previous page printed.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List a flow's root executions, newest first, one page at a time."""
    settings = settings_of(ctx)

    async def body() -> None:
        check_id(flow_id, "flow_id")
        position = None if after is None else PageCursor.decode(after, flow_id).as_position()
        async with opened_store(settings) as store:
            # One row more than the page tells whether a next page exists.
            rows = await store.get_root_executions(flow_id, limit + 1, position, owner_id=owner)
            now = await store.now()
        page = rows[:limit]
        next_cursor = PageCursor.after(page[-1]).encode() if len(rows) > limit else None
        if wants_json(ctx, as_json):
            print_json(
                {"executions": [root_json(r, now) for r in page], "next_cursor": next_cursor}
            )
            return
        console = stdout_console()
        if not page:
            more = "more " if position is not None else ""
            console.print(f"no {more}root executions of flow {flow_id}")
            return
        table = Table(
            title=f"root executions of {flow_id}", title_justify="left", box=box.SIMPLE_HEAD,
            show_edge=False, pad_edge=False, padding=(0, 0),
        )
        # An id or a status cut short is useless; a long owner folds, past ten characters.
        widths = {
            "id": max(len(r.execution.id) for r in page),
            "status": 9,
            "owner": min(max(len(r.execution.owner_id) for r in page), 10),
        }
        columns = ("id", "status", "owner", "created", "runs", "duration", "levels", "nested")
        for name in columns:
            justify: Any = "right" if name in ("duration", "levels", "nested") else "left"
            table.add_column(
                name, justify=justify, no_wrap=name != "owner", overflow="fold",
                min_width=widths.get(name),
            )
        for root in page:
            e = root.execution
            table.add_row(
                e.id,
                status_text(e.status),
                e.owner_id,
                format_age(e.created_at, now),
                runs_text(e, now),
                format_duration(run_duration(e, now)),
                str(root.levels),
                str(root.total_nested),
            )
        console.print(table)
        if next_cursor is None:
            console.print(f"{len(page)} shown; no more pages")
        else:
            console.print(f"{len(page)} shown; next page: --after {next_cursor}", soft_wrap=True)

    run(settings, body())


SHOWN_CHILDREN = 100


def show_execution(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="The execution to show.")],
    as_json: JsonFlag = False,
) -> None:
    """Show every field of one execution, its claim, its recovery history, its progress and
    its last traceback."""
    settings = settings_of(ctx)

    async def body() -> None:
        check_id(execution_id, "execution id")
        async with opened_store(settings) as store:
            execution = await store.get(execution_id)
            if execution is None:
                raise ExecutionNotFound(execution_id)
            claim = await store.get_claim_for_execution(execution_id)
            history = await store.get_recovery_history(execution_id)
            # The first children by id, from the bounded tree query: a fan-out of a million
            # must not make `show` load a million rows.
            subtree = await store.get_execution_tree(execution_id, max_nodes=SHOWN_CHILDREN + 1)
            children = [node.id for node in subtree if node.level == 1]
            more_children = len(subtree) > SHOWN_CHILDREN and subtree[-1].level == 1
            progress = await read_progress(store, execution_id)
            now = await store.now()
        if wants_json(ctx, as_json):
            print_json(
                {
                    "execution": execution_json(execution, now),
                    "claim": jsonable(claim),
                    "recovery_history": jsonable(history),
                    "children": children,
                    "more_children": more_children,
                    "progress": progress.to_json(),
                }
            )
            return
        console = stdout_console()
        fields = Table(show_header=False, box=None, title=f"execution {execution.id}",
                       title_justify="left")
        fields.add_column(style="bold", no_wrap=True)
        fields.add_column(overflow="fold")
        for name, value in jsonable(execution).items():
            shown: Text | str = (
                status_text(execution.status) if name == "status" else _field_text(value)
            )
            fields.add_row(name, shown)
        fields.add_row("duration", format_duration(run_duration(execution, now)))
        fields.add_row("children", f"{len(children)}{'+' if more_children else ''}")
        console.print(fields)
        print_progress(console, progress)
        if claim is None:
            console.print("claim: none")
        else:
            console.print(
                f"claim: {claim.status.value} by {claim.worker_id} (epoch {claim.epoch}), "
                f"claimed {format_age(claim.claimed_at, now)}, "
                f"heartbeat {format_age(claim.heartbeat_at, now)}, "
                f"expires {format_age(claim.expires_at, now)}"
            )
        if not history:
            console.print("recovery history: none")
            return
        console.print(recovery_table(history))

    run(settings, body())


def _field_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def show_tree(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="Any execution; its subtree is shown.")],
    max_nodes: Annotated[
        int, typer.Option("--max-nodes", min=1, max=MAX_TREE_NODES, help="Show at most this many.")
    ] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Show an execution and everything it spawned, with status colours and durations."""
    settings = settings_of(ctx)

    async def body() -> None:
        check_id(execution_id, "execution id")
        async with opened_store(settings) as store:
            nodes = await store.get_execution_tree(execution_id, max_nodes=max_nodes)
            now = await store.now()
        if not nodes:
            raise ExecutionNotFound(execution_id)
        truncated = len(nodes) >= max_nodes
        if wants_json(ctx, as_json):
            print_json({"tree": tree_json(nodes, now), "truncated": truncated})
            return
        console = stdout_console()
        console.print(rich_tree(nodes, now))
        if truncated:
            console.print(f"(showing the first {max_nodes} executions; raise --max-nodes)")

    run(settings, body())


def tree_json(nodes: list[ExecutionTreeNode], now: Any) -> dict[str, Any]:
    """The subtree as nested objects: each execution with a `children` list."""
    by_id: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] | None = None
    for node in nodes:  # sorted by level, so a parent comes before its children
        item = execution_json(node.execution, now)
        item["level"] = node.level
        item["children"] = []
        by_id[node.id] = item
        parent = by_id.get(node.parent_id) if node.parent_id is not None else None
        if parent is not None:
            parent["children"].append(item)
        elif top is None:
            top = item
    assert top is not None
    return top


def rich_tree(nodes: list[ExecutionTreeNode], now: Any) -> Tree:
    """A branch per execution; the flow id shows at the top and wherever it changes."""
    branches: dict[str, Tree] = {}
    flows: dict[str, str] = {}
    top: Tree | None = None
    for node in nodes:
        parent_flow = flows.get(node.parent_id) if node.parent_id is not None else None
        label = node_label(node.execution, now, show_flow=parent_flow != node.execution.flow_id)
        parent = branches.get(node.parent_id) if node.parent_id is not None else None
        branch = parent.add(label) if parent is not None else Tree(label)
        if top is None:
            top = branch
        branches[node.id] = branch
        flows[node.id] = node.execution.flow_id
    assert top is not None
    return top


def node_label(execution: Execution, now: Any, *, show_flow: bool = True) -> Text:
    label = Text()
    label.append(execution.status.value, style=STATUS_STYLES[execution.status])
    label.append(f" {execution.id}", style="bold")
    label.append(f"  {format_duration(run_duration(execution, now))}", style="dim")
    if show_flow:
        label.append(f"  {execution.flow_id}")
    event = event_label(execution)
    if event is not None:
        label.append(f" on {event}", style="italic")
    if execution.failure_count:
        plural = "s" if execution.failure_count > 1 else ""
        label.append(f"  {execution.failure_count} failure{plural}", style="yellow")
    if execution.error_message:
        where = f" at {execution.error_node_id}" if execution.error_node_id else ""
        label.append(f"  error{where}: {execution.error_message}", style="red")
    return label


def list_claims(
    ctx: typer.Context,
    worker: Annotated[str | None, typer.Option("--worker", help="Only this worker's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the live leases: which worker holds which execution, until when."""
    settings = settings_of(ctx)

    async def body() -> None:
        async with opened_store(settings) as store:
            claims = await store.get_active_claims(worker_id=worker)
            now = await store.now()
        if wants_json(ctx, as_json):
            print_json({"claims": claims})
            return
        console = stdout_console()
        if not claims:
            console.print("no active claims" + (f" for worker {worker}" if worker else ""))
            return
        table = Table(title="active claims", title_justify="left")
        for name in ("execution", "worker", "epoch", "claimed", "heartbeat", "expires"):
            table.add_column(name, no_wrap=name == "execution")
        for claim in claims:
            table.add_row(
                claim.execution_id,
                claim.worker_id,
                str(claim.epoch),
                format_age(claim.claimed_at, now),
                format_age(claim.heartbeat_at, now),
                format_age(claim.expires_at, now),
            )
        console.print(table)
        console.print(f"{len(claims)} active claim{'s' if len(claims) != 1 else ''}")

    run(settings, body())


def show_stats(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Counts by status, live claims, the oldest queued age and recent recoveries."""
    settings = settings_of(ctx)

    async def body() -> None:
        async with opened_store(settings) as store:
            stats = await store.get_stats()
            now = await store.now()
        oldest_age = None if stats.oldest_queued_at is None else now - stats.oldest_queued_at
        if wants_json(ctx, as_json):
            print_json(
                {
                    "counts_by_status": stats.counts_by_status,
                    "total": sum(stats.counts_by_status.values()),
                    "active_claims": stats.active_claims,
                    "oldest_queued_at": stats.oldest_queued_at,
                    "oldest_queued_age_s": oldest_age,
                    "recoveries_last_hour": stats.recoveries_last_hour,
                }
            )
            return
        console = stdout_console()
        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(justify="right")
        for status, style in STATUS_STYLES.items():
            count = stats.counts_by_status.get(status.value, 0)
            table.add_row(Text(status.value, style=style), str(count))
        table.add_row("total", str(sum(stats.counts_by_status.values())))
        table.add_row("active claims", str(stats.active_claims))
        table.add_row("oldest queued", format_duration(oldest_age))
        table.add_row("recoveries (1h)", str(stats.recoveries_last_hour))
        console.print(table)

    run(settings, body())
