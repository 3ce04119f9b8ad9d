"""`submit --at/--in/--key/--priority`, the `runs` column of `ls`, and `flowexec schedules`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.cli import cli_app
from tests.cli.conftest import Cli, assert_one_line_error

from flowexec.store.protocol import ExecutionStore

APP = "tests.cli.cli_app:app"


async def test_submit_in_a_while_runs_later_and_ls_says_when(
    cli: Cli, store: ExecutionStore
) -> None:
    before = await store.now()
    human = await cli.ok("submit", cli_app.ECHO, "--owner", "alice", "--in", "10m")
    execution_id = human.stdout.split()[1]
    assert "runs at" in human.stdout
    stored = await store.get(execution_id)
    assert stored is not None and stored.available_at is not None
    assert timedelta(minutes=10) <= stored.available_at - before < timedelta(minutes=11)
    listing = await cli.ok("ls", cli_app.ECHO)
    assert "in 9m" in listing.stdout or "in 10m" in listing.stdout
    started = await cli.json("start", execution_id)
    assert started["execution"]["available_at"] < stored.available_at.isoformat()


async def test_submit_at_a_time_with_a_key_and_a_priority(
    cli: Cli, store: ExecutionStore
) -> None:
    args = ("submit", cli_app.ECHO, "--owner", "alice", "--at", "2031-12-24T18:00Z",
            "--key", "order-7", "--priority", "3")
    first = (await cli.json(*args))["execution"]
    again = (await cli.json(*args))["execution"]
    assert again["id"] == first["id"]
    stored = await store.get(first["id"])
    assert stored is not None
    assert stored.available_at == datetime(2031, 12, 24, 18, tzinfo=UTC)
    assert (stored.priority, stored.idempotency_key) == (3, "order-7")


async def test_bad_times_are_usage_errors(cli: Cli, store: ExecutionStore) -> None:
    for args, message in [
        (("--at", "tomorrow"), "not an ISO 8601 time"),
        (("--at", "2031-12-24T18:00"), "needs a time zone offset"),
        (("--in", "soon"), "not a duration"),
        (("--at", "2031-12-24T18:00Z", "--in", "1m"), "not both"),
    ]:
        result = await cli("submit", cli_app.ECHO, "--owner", "alice", *args)
        assert_one_line_error(result, 2, message)
    assert await store.get_root_executions(cli_app.ECHO) == []


async def test_schedules_lists_last_and_next_runs(cli: Cli, store: ExecutionStore) -> None:
    listed = (await cli.json("schedules", "--app", APP))["schedules"]
    [report] = listed
    assert report["schedule_id"] == cli_app.REPORT_SCHEDULE
    assert report["last_slot_at"] is None and report["next_slot_at"] is not None
    slot = datetime(2026, 12, 24, 8, tzinfo=UTC)  # 09:00 in Berlin
    assert await store.fill_schedule_slot(
        cli_app.REPORT_SCHEDULE, slot, cli_app.app.schedules[0].execution()
    )
    [report] = (await cli.json("schedules", "--app", APP))["schedules"]
    assert report["last_slot_at"] == slot.isoformat()
    human = await cli.ok("schedules", "--app", APP)
    assert cli_app.REPORT_SCHEDULE in human.stdout and "Europe/Berlin" in human.stdout
