"""Read-only commands for operators: show, tree, claims, stats (`ls` is list_command.py).

They open the store without migrating it, so pointing one at the wrong database never
creates tables there; an unmigrated database is reported as such.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from flowexec.cli.events_command import print_progress, read_progress
from flowexec.cli.render import (
    STATUS_STYLES,
    event_label,
    execution_json,
    format_age,
    format_duration,
    jsonable,
    print_json,
    print_recovery_table,
    run_duration,
    status_text,
    stdout_console,
)
from flowexec.cli.session import JsonFlag, opened_store, run, settings_of, wants_json
from flowexec.cli.tables import Column, WideFlag, print_table
from flowexec.cli.workers_command import unserved_lines
from flowexec.errors import ExecutionNotFound
from flowexec.model import (
    MAX_TREE_NODES,
    ClaimStatus,
    Execution,
    ExecutionClaim,
    ExecutionStatus,
    ExecutionTreeNode,
    check_id,
)

SHOWN_CHILDREN = 100


def show_execution(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="The execution to show.")],
    as_json: JsonFlag = False,
    wide: WideFlag = False,
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
            if name == "available_at" and execution.status is not ExecutionStatus.CREATED:
                value = None  # the queue's clock only means something while queued
            shown: Text | str = (
                status_text(execution.status) if name == "status" else _field_text(value)
            )
            fields.add_row(name, shown)
        fields.add_row("duration", format_duration(run_duration(execution, now)))
        fields.add_row("children", f"{len(children)}{'+' if more_children else ''}")
        console.print(fields)
        print_progress(console, progress)
        console.print(claim_line(claim, now))
        if not history:
            console.print("recovery history: none")
            return
        print_recovery_table(console, history, wide=wide)

    run(settings, body())


def claim_line(claim: ExecutionClaim | None, now: datetime) -> str:
    """A live lease says when it expires; a released or expired one only who held it last,
    since its expiry no longer means anything."""
    if claim is None:
        return "claim: none"
    held = (
        f"by {claim.worker_id} (epoch {claim.epoch}), claimed {format_age(claim.claimed_at, now)}"
        f", last heartbeat {format_age(claim.heartbeat_at, now)}"
    )
    if claim.status is ClaimStatus.ACTIVE and claim.expires_at > now:
        return f"claim: active {held}, expires {format_age(claim.expires_at, now)}"
    if claim.status is ClaimStatus.ACTIVE:
        return f"claim: lapsed, last held {held}, lapsed {format_age(claim.expires_at, now)}"
    return f"claim: {claim.status.value}, last held {held}"


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
        nodes = in_emit_order(nodes)
        truncated = len(nodes) >= max_nodes
        if wants_json(ctx, as_json):
            print_json({"tree": tree_json(nodes, now), "truncated": truncated})
            return
        console = stdout_console()
        console.print(rich_tree(nodes, now))
        if truncated:
            console.print(f"(showing the first {max_nodes} executions; raise --max-nodes)")

    run(settings, body())


def in_emit_order(nodes: list[ExecutionTreeNode]) -> list[ExecutionTreeNode]:
    """Level by level as the store gives them, siblings in the order their parent emitted
    them (creation time; the id only breaks ties), not in the order of their hashed ids."""
    return sorted(nodes, key=lambda n: (n.level, n.execution.created_at, n.id))


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


CLAIM_COLUMNS = (
    Column("execution"),
    Column("worker"),
    Column("expires", priority=1),
    Column("heartbeat", priority=2),
    Column("claimed", priority=3),
    Column("epoch", priority=4, justify="right"),
)


def list_claims(
    ctx: typer.Context,
    worker: Annotated[str | None, typer.Option("--worker", help="Only this worker's.")] = None,
    as_json: JsonFlag = False,
    wide: WideFlag = False,
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
        rows = [
            [claim.execution_id, claim.worker_id, format_age(claim.expires_at, now),
             format_age(claim.heartbeat_at, now), format_age(claim.claimed_at, now),
             str(claim.epoch)]
            for claim in claims
        ]
        print_table(console, CLAIM_COLUMNS, rows, wide=wide, title="active claims")
        console.print(f"{len(claims)} active claim{'s' if len(claims) != 1 else ''}")

    run(settings, body())


def show_stats(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Counts by status, live claims, the oldest queued age, recent recoveries, and the queued
    flows no live worker serves."""
    settings = settings_of(ctx)

    async def body() -> None:
        async with opened_store(settings) as store:
            stats = await store.get_stats()
            now = await store.now()
            unserved = await store.get_unserved_queues()
        oldest_age = None if stats.oldest_queued_at is None else now - stats.oldest_queued_at
        if wants_json(ctx, as_json):
            print_json(
                {
                    # Every status, as the text shows them: a script reads 0, not a gap.
                    "counts_by_status": {
                        status.value: stats.counts_by_status.get(status.value, 0)
                        for status in ExecutionStatus
                    },
                    "total": sum(stats.counts_by_status.values()),
                    "active_claims": stats.active_claims,
                    "oldest_queued_at": stats.oldest_queued_at,
                    "oldest_queued_age_s": oldest_age,
                    "recoveries_last_hour": stats.recoveries_last_hour,
                    "queued_without_live_worker": unserved,
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
        for line in unserved_lines(unserved):
            console.print(Text(line, style="bold red"))

    run(settings, body())
