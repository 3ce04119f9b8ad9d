"""`flowexec events`, the progress and last traceback in `show`, and `submit --wait`'s events."""

from __future__ import annotations

import json

from tests.cli import cli_app
from tests.cli.conftest import Cli, assert_one_line_error
from tests.conformance.helpers import WORKER, set_status, start_running

from flowexec.model import EventBatch, ExecutionStatus, NewEvent
from flowexec.runtime import Worker
from flowexec.store.protocol import ExecutionStore

S = ExecutionStatus
TRACEBACK = 'Traceback (most recent call last):\n  File "flows.py", line 7, in f\nKeyError: 1'


async def failed_execution(store: ExecutionStore) -> str:
    """started, node a done, node b running, a log line, then failed with a traceback."""
    execution, lease = await start_running(store)
    events = (
        NewEvent("node:started", {"node_id": "a"}),
        NewEvent("node:completed", {"node_id": "a", "duration_ms": 3}),
        NewEvent("node:started", {"node_id": "b"}),
        NewEvent("log", {"message": "halfway", "rows": 2}),
    )
    await store.append_events(WORKER, [EventBatch(execution.id, lease.epoch, events)])
    assert await set_status(
        store, execution.id, S.FAILED, lease, error_message="KeyError: 1",
        event_data={"type": "KeyError", "traceback": TRACEBACK},
    )
    return execution.id


async def test_events_prints_the_log_as_text_and_json_lines(
    cli: Cli, store: ExecutionStore
) -> None:
    execution_id = await failed_execution(store)
    text = (await cli.ok("events", execution_id)).stdout
    assert text.splitlines()[0].startswith("#0 ")
    assert "flow:started" in text and "log (attempt 1) " in text
    assert "message=halfway" in text and "rows=2" in text
    assert 'File "flows.py", line 7, in f' in text
    lines = (await cli.ok("events", execution_id, "--json")).stdout.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [e["index"] for e in parsed] == list(range(6))
    assert parsed[-1]["type"] == "flow:failed" and parsed[-1]["data"]["type"] == "KeyError"
    some = (await cli.ok("events", execution_id, "--from", "2", "--type", "node:started",
                         "--type", "log", "--json", "--follow")).stdout.splitlines()
    assert [json.loads(line)["index"] for line in some] == [3, 4]


async def test_events_of_an_unknown_execution_fail_in_one_line(cli: Cli) -> None:
    for args in (["events", "nope"], ["events", "nope", "--follow"]):
        assert_one_line_error(await cli(*args), 1, "nope")


async def test_show_prints_the_progress_and_the_last_traceback(
    cli: Cli, store: ExecutionStore
) -> None:
    execution_id = await failed_execution(store)
    text = (await cli.ok("show", execution_id)).stdout
    assert "progress: 1 nodes done; running now: b" in text
    assert "last traceback (event #5, flow:failed):" in text
    assert "KeyError: 1" in text.split("last traceback")[1]
    shown = await cli.json("show", execution_id)
    assert shown["progress"]["running_nodes"] == ["b"]
    assert shown["progress"]["nodes_done"] == 1
    assert shown["progress"]["last_failure"]["data"]["traceback"] == TRACEBACK


async def test_submit_wait_prints_the_events_as_they_happen(cli: Cli, worker: Worker) -> None:
    result = await cli.ok(
        "submit", cli_app.SLOW, "--owner", "a", "--wait", "--timeout", "20",
        "--integration", '{"step_s": 0.01}',
    )
    out = result.stdout
    assert "flow:started" in out and "node:completed (attempt 1) node_id=step-9" in out
    assert out.index("flow:completed") < out.rindex("completed ")
