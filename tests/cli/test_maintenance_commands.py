"""`retry`, `delete` and `purge` through the real command, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.cli.conftest import Cli, assert_one_line_error
from tests.conformance.helpers import (
    create_child,
    create_root,
    make_in_status,
    set_status,
    start_running,
    wait_until_past,
)

from flowexec.cli.maintenance_commands import parse_age
from flowexec.cli.session import UsageError
from flowexec.model import ExecutionStatus
from flowexec.store.protocol import ExecutionStore

S = ExecutionStatus


async def test_retry_runs_a_failed_root_again_with_the_same_input(
    cli: Cli, store: ExecutionStore
) -> None:
    failed = await create_root(
        store, options={"debug": True}, integration={"shop": "s1"},
        external_events=[{"event_name": "paid", "payload": {"n": 1}}],
    )
    assert await set_status(store, failed.id, S.RUNNING)
    assert await set_status(store, failed.id, S.FAILED, error_message="boom")

    retried = await cli.json("retry", failed.id)
    new = retried["execution"]
    assert retried["retried"] == failed.id and new["id"] != failed.id
    assert (new["flow_id"], new["owner_id"], new["status"]) == (
        failed.flow_id, failed.owner_id, "created"
    )
    assert new["options"] == {"debug": True} and new["integration"] == {"shop": "s1"}
    assert new["external_events"] == [{"event_name": "paid", "payload": {"n": 1}}]
    assert new["available_at"] is not None  # queued for a worker
    old = await store.get(failed.id)
    assert old is not None and old.status is S.FAILED  # the old one keeps its history

    held = await cli.ok("retry", failed.id, "--no-start")
    assert "not started: flowexec start" in held.stdout


async def test_retry_refuses_what_it_cannot_run_again(cli: Cli, store: ExecutionStore) -> None:
    running, _ = await start_running(store)
    assert_one_line_error(await cli("retry", running.id), 1, "is running: it cannot be retried")
    done = await make_in_status(store, S.COMPLETED)
    assert_one_line_error(await cli("retry", done), 1, "only a failed or stopped one")
    child = await create_child(store, running)
    assert_one_line_error(await cli("retry", child.id), 2, f"retry its root {running.id}")
    assert_one_line_error(await cli("retry", "EX-none"), 1, "does not exist")


async def test_delete_removes_a_finished_tree_and_wants_force_for_a_live_one(
    cli: Cli, store: ExecutionStore
) -> None:
    root = await create_root(store)
    child = await create_child(store, root)
    assert await set_status(store, root.id, S.STOPPED)
    deleted = await cli.ok("delete", root.id)
    assert f"deleted stopped execution {root.id}" in deleted.stdout
    assert await store.get(root.id) is None and await store.get(child.id) is None

    running, _ = await start_running(store)
    assert_one_line_error(await cli("delete", running.id), 2, "is running", "--force")
    assert await store.get(running.id) is not None
    assert (await cli.json("delete", running.id, "--force"))["deleted"] == running.id
    assert await store.get(running.id) is None
    assert_one_line_error(await cli("delete", running.id), 1, "does not exist")


async def test_purge_by_age_and_status_with_a_dry_run_first(
    cli: Cli, store: ExecutionStore
) -> None:
    failed = [await make_in_status(store, S.FAILED) for _ in range(3)]
    completed = await make_in_status(store, S.COMPLETED)
    live = await create_root(store)
    assert_one_line_error(await cli("purge", "--older-than", "0s"), 2, "more than zero")
    assert_one_line_error(await cli("purge", "--older-than", "1s", "--status", "running"), 2,
                          "only name finished statuses")
    # Nothing has been finished for an hour: nothing to purge.
    assert (await cli.json("purge", "--older-than", "1h"))["trees"] == 0
    await wait_until_past(store, await store.now() + timedelta(seconds=1))

    dry = await cli.json("purge", "--older-than", "1s", "--status", "failed", "--dry-run")
    assert (dry["trees"], dry["dry_run"]) == (3, True)
    assert all([await store.get(i) is not None for i in failed])
    removed = await cli.ok("purge", "--older-than", "1s", "--status", "failed",
                           "--batch-size", "2")
    assert removed.stdout.startswith("removed 3 failed execution trees finished before")
    assert [await store.get(i) for i in failed] == [None, None, None]
    assert await store.get(completed) is not None and await store.get(live.id) is not None
    assert (await cli.json("purge", "--older-than", "1s"))["trees"] == 1  # the completed one
    assert await store.get(live.id) is not None


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("90m", 5400), ("12h", 43200), ("7d", 604800),
                          ("1w2d", 777600), (" 2W ", 1209600)],
)
def test_ages(text: str, seconds: int) -> None:
    assert parse_age(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "-1d", "1.5h", "7d junk"])
def test_bad_ages(text: str) -> None:
    with pytest.raises(UsageError, match="not an age"):
        parse_age(text)
    with pytest.raises(UsageError, match="more than 1000 years"):
        parse_age("99999999999w")
