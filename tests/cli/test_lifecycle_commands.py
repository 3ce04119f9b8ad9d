"""`submit`, `start`, `stop`, `pause`, `resume` through the real command and the runtime Client."""

from __future__ import annotations

import asyncio

import pytest
from tests.cli import cli_app
from tests.cli.conftest import Cli, assert_one_line_error
from tests.conformance.helpers import start_running

from flowexec.model import ExecutionStatus
from flowexec.runtime import Worker
from flowexec.store.protocol import ExecutionStore

S = ExecutionStatus


async def test_submit_stores_options_integration_and_events(
    cli: Cli, store: ExecutionStore
) -> None:
    shown = await cli.json(
        "submit", cli_app.ECHO, "--owner", "alice",
        "--options",
        '{"debug": true, "breakpoints": ["b1"], "execution": {"node_timeout_ms": 500}}',
        "--integration", '{"crm": {"id": 7}}',
        "--event", 'order.paid={"amount": 12.5}', "--event", "order.noted=null",
    )
    execution_id = shown["execution"]["id"]
    stored = await store.get(execution_id)
    assert stored is not None and stored.status is S.CREATED and stored.available_at is not None
    assert stored.owner_id == "alice" and stored.flow_id == cli_app.ECHO
    assert stored.options is not None and stored.options.to_json() == {
        "debug": True, "breakpoints": ["b1"], "execution": {"node_timeout_ms": 500}
    }
    assert stored.integration == {"crm": {"id": 7}}
    assert stored.external_events == [
        {"event_name": "order.paid", "payload": {"amount": 12.5}},
        {"event_name": "order.noted", "payload": None},
    ]
    assert shown["execution"]["options"]["execution"] == {"node_timeout_ms": 500}

    human = await cli.ok("submit", cli_app.ECHO, "--owner", "bob")
    assert "queued for a worker" in human.stdout


async def test_no_start_then_start(cli: Cli, store: ExecutionStore) -> None:
    created = await cli.ok("submit", cli_app.ECHO, "--owner", "alice", "--no-start")
    execution_id = created.stdout.split()[1]
    assert f"not started: run `flowexec start {execution_id}`" in created.stdout
    stored = await store.get(execution_id)
    assert stored is not None and stored.available_at is None

    started = await cli.json("start", execution_id)
    assert started["execution"]["available_at"] is not None
    again = await cli.ok("start", execution_id)
    assert "was already queued; nothing to do" in again.stdout


async def test_submit_wait_returns_the_result_from_a_real_worker(
    cli: Cli, worker: Worker
) -> None:
    done = await cli.json(
        "submit", cli_app.ECHO, "--owner", "alice", "--wait", "--timeout", "20",
        "--integration", '{"k": 1}', "--event", "hello=[1, 2]",
    )
    execution = done["execution"]
    assert execution["status"] == "completed"
    assert execution["result"] == {
        "worker": "cli-test-worker", "integration": {"k": 1}, "event": ["hello", [1, 2]],
    }
    human = await cli.ok("submit", cli_app.ECHO, "--owner", "alice", "--wait", "--timeout", "20")
    assert "completed" in human.stdout and '"worker": "cli-test-worker"' in human.stdout


async def test_submit_wait_exits_1_when_the_run_fails(cli: Cli, worker: Worker) -> None:
    result = await cli("submit", cli_app.FAIL, "--owner", "alice", "--wait", "--timeout", "20")
    assert result.exit_code == 1
    assert "failed" in result.stdout
    [line] = result.stderr.strip().splitlines()
    assert "is failed at node check: the input was refused" in line


async def test_submit_wait_tree_waits_for_the_children_too(
    cli: Cli, store: ExecutionStore, worker: Worker
) -> None:
    done = await cli.json(
        "submit", cli_app.FAN, "--owner", "a", "--wait", "--tree", "--timeout", "20",
        "--integration", '{"fan": 4}',
    )
    assert done["execution"]["status"] == "completed"
    assert done["tree"] == {"executions": 5, "not_completed": []}
    children = await store.get_child_executions(done["execution"]["id"])
    assert len(children) == 4 and {c.status for c in children} == {S.COMPLETED}

    failing = await cli(
        "submit", cli_app.FAN, "--owner", "a", "--wait", "--tree", "--timeout", "20",
        "--integration", '{"fan": 1, "fail_child": true}',
    )
    assert failing.exit_code == 1
    assert "tree: 3 executions, 1 not completed" in failing.stdout
    assert "1 executions of the tree did not complete" in failing.stderr
    alone = await cli("submit", cli_app.FAN, "--owner", "a", "--tree")
    assert alone.exit_code == 2 and "--tree only applies with --wait" in alone.stderr


async def test_submit_wait_times_out_without_a_worker(cli: Cli) -> None:
    result = await cli("submit", cli_app.ECHO, "--owner", "a", "--wait", "--timeout", "0.2")
    assert result.exit_code == 1
    assert "still created after 0.2 s" in result.stderr
    assert "Traceback" not in result.stderr


async def test_pause_resume_and_stop_reach_a_running_worker(
    cli: Cli, store: ExecutionStore, worker: Worker
) -> None:
    submitted = await cli.json("submit", cli_app.SLOW, "--owner", "alice")
    execution_id = submitted["execution"]["id"]
    await until_status(store, execution_id, S.RUNNING)

    paused = await cli.json("pause", execution_id, "--reason", "look first")
    assert paused["execution"]["status"] == "paused"
    await asyncio.sleep(0.4)  # a paused run makes no progress
    assert (await store.get(execution_id)).status is S.PAUSED  # type: ignore[union-attr]

    resumed = await cli.ok("resume", execution_id)
    assert "running" in resumed.stdout and "resumed" in resumed.stdout
    stopped = await cli.json("stop", execution_id, "--reason", "enough")
    assert stopped["execution"]["status"] == "stopped"
    assert stopped["execution"]["error_message"] == "enough"
    assert stopped["execution"]["completed_at"] is not None


async def test_illegal_transitions_are_one_line_errors(cli: Cli, store: ExecutionStore) -> None:
    running, _ = await start_running(store)
    assert_one_line_error(
        await cli("resume", running.id), 1,
        "is running: it cannot be resumed (only a paused execution can be)",
    )
    assert_one_line_error(
        await cli("start", running.id), 1,
        "is running: it cannot be started (only a created execution can be)",
    )
    await cli.ok("stop", running.id)
    assert_one_line_error(
        await cli("start", running.id), 1, "is stopped, which is final: it cannot be started"
    )
    assert_one_line_error(await cli("stop", running.id), 1, "is stopped, which is final")
    assert_one_line_error(await cli("pause", running.id), 1, "it cannot be paused")


@pytest.mark.parametrize("command", ["start", "stop", "pause", "resume", "show", "tree"])
async def test_unknown_execution_ids(cli: Cli, command: str) -> None:
    assert_one_line_error(await cli(command, "EXNOSUCHTHING"), 1, "'EXNOSUCHTHING' does not exist")


async def test_bad_input_to_submit(cli: Cli, store: ExecutionStore) -> None:
    cases = [
        (["--options", "{bad"], "--options is not valid JSON"),
        (["--options", "[1]"], "--options must be a JSON object, not list"),
        (["--options", '{"retries": 3}'], "options has unknown keys: ['retries']"),
        (["--options", '{"execution": {"node_timeout_ms": -1}}'], "node_timeout_ms must be"),
        (["--integration", "nope"], "--integration is not valid JSON"),
        (["--event", "no-equals-sign"], "must look like NAME=JSON"),
        (["--event", "=1"], "must look like NAME=JSON"),
        (["--event", "x={oops"], "--event x is not valid JSON"),
        (["--app", "tests.cli.cli_app"], "must look like module:attribute"),
    ]
    for extra, message in cases:
        result = await cli("submit", cli_app.ECHO, "--owner", "a", *extra)
        assert_one_line_error(result, 2, message)
    assert_one_line_error(await cli("submit", cli_app.ECHO, "--owner", ""), 2, "owner_id")
    unknown = await cli("submit", "no.such.flow", "--owner", "a", "--app", "tests.cli.cli_app:app")
    assert_one_line_error(unknown, 1, "no flow is registered as 'no.such.flow'")
    assert (await store.get_stats()).counts_by_status == {}  # nothing was written


async def until_status(
    store: ExecutionStore, execution_id: str, status: ExecutionStatus, limit_s: float = 10
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while (current := await store.get(execution_id)) is None or current.status is not status:
        assert loop.time() < deadline, f"{execution_id} never became {status}: {current}"
        await asyncio.sleep(0.02)
