"""Commands that clean up after executions: retry a failed one, delete one, purge old ones.

`retry` runs a failed or stopped root again as a new execution with the same input, so the
old one keeps its history (its events, failures and recoveries) as it ended. `purge` removes
whole trees that finished long enough ago, in batches, on the database clock.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import typer

from flowexec.cli.render import execution_json, format_time, print_json, stdout_console
from flowexec.cli.session import (
    JsonFlag,
    UsageError,
    opened_store,
    run,
    settings_of,
    wants_json,
)
from flowexec.errors import ExecutionNotFound, InvalidTransition
from flowexec.model import ExecutionStatus, check_id
from flowexec.runtime import Client
from flowexec.store.limits import MAX_BATCH

RETRYABLE = (ExecutionStatus.FAILED, ExecutionStatus.STOPPED)

AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
AGE_PATTERN = re.compile(r"(\d+)([smhdw])")
MAX_AGE_S = 1000 * 365 * 86400
"""Beyond any finish time a database holds, and within what a timestamp can go back."""


def parse_age(text: str) -> timedelta:
    """`7d`, `12h`, `1w2d`, `90m`, `30s`: an age, as `--older-than` takes it."""
    compact = text.strip().lower()
    parts = AGE_PATTERN.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise UsageError(
            f"--older-than {text!r} is not an age such as 30s, 90m, 12h, 7d or 2w"
        )
    seconds = sum(int(n) * AGE_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError("--older-than must be more than zero")
    if seconds > MAX_AGE_S:
        raise UsageError(f"--older-than {text!r} is more than {MAX_AGE_S // (365 * 86400)} years")
    return timedelta(seconds=seconds)


def retry(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="A failed or stopped root execution.")],
    start: Annotated[
        bool, typer.Option("--start/--no-start", help="Queue the new execution at once.")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Run a failed or stopped root execution again, as a new execution with the same flow,
    owner, options, integration and events; the old one stays as it ended."""
    settings = settings_of(ctx)

    async def body() -> None:
        check_id(execution_id, "execution id")
        async with opened_store(settings) as store:
            old = await store.get(execution_id)
            if old is None:
                raise ExecutionNotFound(execution_id)
            if old.parent_execution_id is not None:
                raise UsageError(
                    f"execution {old.id} is a child of {old.parent_execution_id}: retry its "
                    f"root {old.root_execution_id}, which runs its children again"
                )
            if old.status not in RETRYABLE:
                raise InvalidTransition(old.id, old.status, ExecutionStatus.CREATED,
                                        action="retried (only a failed or stopped one can be)")
            new_id = await Client(store).create(
                old.flow_id, owner_id=old.owner_id, options=old.options,
                integration=old.integration, events=old.external_events, start=start,
            )
            new = await store.get(new_id)
            now = await store.now()
        assert new is not None
        if wants_json(ctx, as_json):
            print_json({"retried": old.id, "execution": execution_json(new, now)})
            return
        queued = "queued for a worker" if start else f"not started: flowexec start {new.id}"
        stdout_console().print(f"retried {old.id} as {new.id}; {queued}", soft_wrap=True)

    run(settings, body())


def delete(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="The execution to delete.")],
    force: Annotated[
        bool, typer.Option("--force", help="Delete it even though it has not finished.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete an execution with everything it spawned, its claims, events and recovery
    history. One that has not finished needs --force (a worker running it then loses it)."""
    settings = settings_of(ctx)

    async def body() -> None:
        check_id(execution_id, "execution id")
        async with opened_store(settings) as store:
            execution = await store.get(execution_id)
            if execution is None:
                raise ExecutionNotFound(execution_id)
            if not execution.status.is_terminal and not force:
                raise UsageError(
                    f"execution {execution_id} is {execution.status.value}: stop it first, "
                    "or delete it anyway with --force"
                )
            if not await store.delete(execution_id):
                raise ExecutionNotFound(execution_id)
        if wants_json(ctx, as_json):
            print_json({"deleted": execution_id, "status": execution.status})
            return
        stdout_console().print(
            f"deleted {execution.status.value} execution {execution_id} with its subtree",
            soft_wrap=True,
        )

    run(settings, body())


def purge(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Finished longer ago than this: 30s, 12h, 7d, 2w.")
    ],
    statuses: Annotated[
        list[str] | None,
        typer.Option("--status", help="Only trees whose root ended so (repeatable): "
                     "completed, failed, stopped. Default: all three."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be removed; remove nothing.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=MAX_BATCH, help="Trees per transaction.")
    ] = 500,
    as_json: JsonFlag = False,
) -> None:
    """Remove whole execution trees that finished before a given age, in batches; a tree
    with an execution still unfinished is kept."""
    settings = settings_of(ctx)

    async def body() -> None:
        age = parse_age(older_than)
        async with opened_store(settings) as store:
            before = await store.now() - age
            if dry_run:
                count = await store.count_purgeable(before, statuses=statuses)
            else:
                count = 0
                while True:
                    removed = await store.purge_finished(
                        before, limit=batch_size, statuses=statuses
                    )
                    count += removed
                    if removed < batch_size:
                        break
        if wants_json(ctx, as_json):
            print_json({"finished_before": before, "statuses": statuses, "dry_run": dry_run,
                        "trees": count})
            return
        verb = "would remove" if dry_run else "removed"
        which = "" if not statuses else f" {'/'.join(statuses)}"
        stdout_console().print(
            f"{verb} {count}{which} execution tree{'s' if count != 1 else ''} "
            f"finished before {format_time(before)}", soft_wrap=True,
        )

    run(settings, body())
