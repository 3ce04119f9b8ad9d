"""Commands on one execution, through the runtime's `Client`: submit, start, stop, pause, resume.

The client, not the store, is the lifecycle API: it checks flows and input the same way for
the command line as for Python callers, and workers see its stop and pause within a second.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import typer

from flowexec.cli.apps import load_app
from flowexec.cli.events_command import print_events_until_done
from flowexec.cli.render import (
    execution_json,
    format_duration,
    format_time,
    print_json,
    run_duration,
    runs_text,
    status_text,
    stdout_console,
)
from flowexec.cli.session import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    JsonFlag,
    Settings,
    UsageError,
    fail,
    opened_store,
    parse_json,
    parse_json_object,
    run,
    settings_of,
    wants_json,
)
from flowexec.cli.submit_file import DEFAULT_BATCH_SIZE, submit_lines
from flowexec.cli.when import parse_at, parse_in
from flowexec.cli.workers_command import refuse_unserved_flow
from flowexec.model import Execution, ExecutionStatus, check_id
from flowexec.runtime import Client
from flowexec.store.limits import MAX_CREATE_BATCH

StopReason = Annotated[
    str | None, typer.Option("--reason", help="Why; kept as the execution's error_message.")
]
PauseReason = Annotated[
    str | None,
    typer.Option("--reason", help="Why; logged with --debug (the store keeps no pause reason)."),
]


def parse_event(text: str) -> dict[str, Any]:
    """`NAME=JSON` as the stored event shape `{"event_name": NAME, "payload": JSON}`."""
    name, sep, payload = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"--event {text!r} must look like NAME=JSON, e.g. paid={{\"n\": 1}}")
    return {"event_name": name.strip(), "payload": parse_json(payload, f"--event {name.strip()}")}


def submit(
    ctx: typer.Context,
    flow_id: Annotated[str, typer.Argument(help="The flow to run.")],
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="Who the execution belongs to; with --from-file, of lines without owner_id.",
        ),
    ] = None,
    options: Annotated[
        str | None,
        typer.Option("--options", help='Execution options as JSON, e.g. {"debug": true}.'),
    ] = None,
    integration: Annotated[
        str | None, typer.Option("--integration", help="Integration settings as a JSON object.")
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option("--event", help="An external event NAME=JSON; repeatable."),
    ] = None,
    no_start: Annotated[
        bool, typer.Option("--no-start", help="Create it, but run it only after `start`.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Run it from this time on, e.g. 2026-12-24T18:00Z."),
    ] = None,
    within: Annotated[
        str | None,
        typer.Option("--in", help="Run it after this long (database clock), e.g. 10m, 2h."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Idempotency key: the flow's execution holding it is "
                     "returned instead of creating another."),
    ] = None,
    priority: Annotated[
        int, typer.Option("--priority", help="Lower runs first; default 0.")
    ] = 0,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until it finishes; exit 1 unless it completed.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Seconds --wait waits at most.")
    ] = None,
    tree: Annotated[
        bool,
        typer.Option(
            "--tree",
            help="With --wait: wait until every execution of its tree (the children it emits, "
            "theirs, ...) has finished; exit 1 unless all completed.",
        ),
    ] = False,
    app_spec: Annotated[
        str | None,
        typer.Option("--app", help="module:app; refuse flow ids this app does not register."),
    ] = None,
    as_json: JsonFlag = False,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file",
            metavar="FILE",
            help="Submit one execution per line of JSON Lines (keys owner_id, options, "
            "integration, events, run_at, delay, priority, idempotency_key); - reads stdin.",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, max=MAX_CREATE_BATCH,
            help="Lines of --from-file per batch; each batch is written whole or not at all.",
        ),
    ] = DEFAULT_BATCH_SIZE,
    force: Annotated[
        bool, typer.Option("--force", help="Submit even if no worker runs the flow lately.")
    ] = False,
) -> None:
    """Create a root execution of a flow, runnable at once (or --at a time, or --in a while)
    unless --no-start, or one per line of --from-file, in batches; with --wait, print its
    events as they happen until it ends."""
    settings = settings_of(ctx)
    json_out = wants_json(ctx, as_json)
    if from_file is not None:
        given = [name for name, value in (("--options", options), ("--integration", integration),
                 ("--event", events), ("--wait", wait), ("--tree", tree), ("--at", at),
                 ("--in", within), ("--key", key), ("--priority", priority)) if value]
        if given:
            fail(f"{', '.join(given)} cannot be used with --from-file; each line carries "
                 "its own fields", EXIT_BAD_INPUT)
        _submit_from_file(ctx, flow_id, from_file, owner, not no_start, batch_size, app_spec,
                          json_out, force)
        return
    if owner is None:
        fail("submit needs --owner (or --from-file)", EXIT_BAD_INPUT)
    if tree and not wait:
        fail("--tree only applies with --wait", EXIT_BAD_INPUT)
    if at is not None and within is not None:
        fail("give --at or --in, not both", EXIT_BAD_INPUT)

    async def body() -> tuple[Execution, list[Execution], datetime]:
        parsed_options = None if options is None else parse_json_object(options, "--options")
        parsed_integration = (
            None if integration is None else parse_json_object(integration, "--integration")
        )
        parsed_events = None if not events else [parse_event(e) for e in events]
        flows = None if app_spec is None else load_app(app_spec)
        async with opened_store(settings) as store:
            warning = None if force else await refuse_unserved_flow(store, flow_id)
            client = Client(store, flows=flows)
            execution_id = await client.create(
                flow_id,
                owner_id=owner,
                options=parsed_options,
                integration=parsed_integration,
                events=parsed_events,
                start=not no_start,
                run_at=None if at is None else parse_at(at),
                delay=None if within is None else parse_in(within),
                priority=priority,
                idempotency_key=key,
            )
            _warn(warning)
            if not wait:
                return await client.get(execution_id), [], await store.now()
            waiting = asyncio.ensure_future(client.wait(execution_id, timeout=timeout, tree=tree))
            if not json_out:
                stdout_console().print(f"submitted {execution_id}; waiting for it to finish")
                await print_events_until_done(store, execution_id, waiting)
            execution = await waiting
            if not tree:
                return execution, [], await store.now()
            tree_nodes = await store.get_execution_tree(execution_id)
            return execution, [n.execution for n in tree_nodes], await store.now()

    execution, descendants, db_now = run(settings, body())
    not_completed = [e.id for e in descendants if e.status is not ExecutionStatus.COMPLETED]
    now = execution.completed_at or execution.updated_at
    if json_out:
        shown: dict[str, Any] = {"execution": execution_json(execution, now)}
        if tree:
            shown["tree"] = {"executions": len(descendants), "not_completed": not_completed}
        print_json(shown)
    else:
        _print_outcome(execution, db_now, waited=wait)
        if tree:
            stdout_console().print(
                f"tree: {len(descendants)} executions, {len(not_completed)} not completed"
            )
    if wait and execution.status is not ExecutionStatus.COMPLETED:
        fail(_failure_line(execution), EXIT_FAILED)
    if not_completed:
        fail(f"{len(not_completed)} executions of the tree did not complete, the first "
             f"{not_completed[0]}", EXIT_FAILED)


def _submit_from_file(
    ctx: typer.Context,
    flow_id: str,
    source: str,
    owner: str | None,
    start: bool,
    batch_size: int,
    app_spec: str | None,
    json_out: bool,
    force: bool,
) -> None:
    """Ids one per line as each batch commits; with --json, {"line": N, "id": ...} per line."""
    settings = settings_of(ctx)

    def show(batch: list[tuple[int, str]]) -> None:
        for number, execution_id in batch:
            text = json.dumps({"line": number, "id": execution_id}) if json_out else execution_id
            sys.stdout.write(text + "\n")
        sys.stdout.flush()

    async def body() -> None:
        flows = None if app_spec is None else load_app(app_spec)
        async with opened_store(settings) as store:
            warning = None if force else await refuse_unserved_flow(store, flow_id)
            await submit_lines(store, flow_id, source, owner=owner, start=start,
                               batch_size=batch_size, flows=flows, on_batch=show)
            _warn(warning)

    run(settings, body())


def _warn(warning: str | None) -> None:
    """After the submission succeeded: a warning that concerns it, on stderr."""
    if warning is not None:
        sys.stderr.write(warning + "\n")


def _print_outcome(execution: Execution, now: datetime, *, waited: bool) -> None:
    console = stdout_console()
    line = status_text(execution.status)
    line.append(f" {execution.id} ({execution.flow_id}, owner {execution.owner_id})")
    if waited:
        line.append(f" in {format_duration(run_duration(execution, execution.updated_at))}")
    elif execution.available_at is None:
        line.append(f"; not started: run `flowexec start {execution.id}`")
    elif runs_text(execution, now).startswith("in "):
        line.append(f"; runs at {format_time(execution.available_at)}")
    else:
        line.append("; queued for a worker")
    console.print(line, soft_wrap=True)
    if waited and execution.status is ExecutionStatus.COMPLETED:
        console.print_json(data=execution.result)


def _failure_line(execution: Execution) -> str:
    where = f" at node {execution.error_node_id}" if execution.error_node_id else ""
    reason = f": {execution.error_message}" if execution.error_message else ""
    return f"execution {execution.id} is {execution.status.value}{where}{reason}"


def _lifecycle(
    ctx: typer.Context,
    execution_id: str,
    as_json: bool,
    verb: str,
    command: Callable[[Client], Awaitable[str | None]],
) -> None:
    """Run one client command, then show the execution as it is now."""
    settings: Settings = settings_of(ctx)

    async def body() -> tuple[Execution, str | None, Any]:
        check_id(execution_id, "execution id")
        async with opened_store(settings) as store:
            client = Client(store)
            note = await command(client)
            return await client.get(execution_id), note, await store.now()

    execution, note, now = run(settings, body())
    if wants_json(ctx, as_json):
        print_json({"execution": execution_json(execution, now)})
        return
    line = status_text(execution.status)
    line.append(f" {execution.id}: {note or verb}")
    stdout_console().print(line, soft_wrap=True)


def start(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="An execution submitted with --no-start.")],
    as_json: JsonFlag = False,
) -> None:
    """Make an execution created with --no-start runnable."""

    async def command(client: Client) -> str:
        started = await client.start(execution_id)
        return "queued for a worker" if started else "was already queued; nothing to do"

    _lifecycle(ctx, execution_id, as_json, "started", command)


def stop(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="The execution to stop for good.")],
    reason: StopReason = None,
    as_json: JsonFlag = False,
) -> None:
    """Stop an execution for good; a worker running it cancels the run within a second."""

    async def command(client: Client) -> None:
        await client.stop(execution_id, reason=reason)

    _lifecycle(ctx, execution_id, as_json, "stopped", command)


def pause(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="A running execution.")],
    reason: PauseReason = None,
    as_json: JsonFlag = False,
) -> None:
    """Hold a running execution at its next node boundary, until `resume`."""

    async def command(client: Client) -> None:
        await client.pause(execution_id, reason=reason)

    _lifecycle(ctx, execution_id, as_json, "paused; `flowexec resume` continues it", command)


def resume(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="A paused execution.")],
    as_json: JsonFlag = False,
) -> None:
    """Let a paused execution continue."""

    async def command(client: Client) -> None:
        await client.resume(execution_id)

    _lifecycle(ctx, execution_id, as_json, "resumed", command)
