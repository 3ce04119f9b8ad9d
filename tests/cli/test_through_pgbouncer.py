"""The command line through PgBouncer's transaction pooling, with nothing else configured,
and with `--session-database-url` for the listening connection."""

from __future__ import annotations

import json

import pytest
from tests.cli import cli_app
from tests.cli.conftest import Cli
from tests.pgbouncer import PgBouncer

from flowexec.store.protocol import ExecutionStore
from flowexec.store.urls import SESSION_URL_ENV

pytestmark = pytest.mark.parametrize("route", ["pgbouncer"], indirect=True)


async def test_commands_work_through_the_transaction_alias(
    cli: Cli, store: ExecutionStore, pgbouncer: PgBouncer
) -> None:
    assert cli.url == pgbouncer.url
    submitted = await cli.json("submit", cli_app.ECHO, "--owner", "alice", "--no-start")
    execution_id = submitted["execution"]["id"]
    assert (await store.get(execution_id)).status.value == "created"
    await cli.ok("start", execution_id)
    assert (await store.get(execution_id)).available_at is not None
    listed = await cli.json("ls", cli_app.ECHO)
    assert [row["id"] for row in listed["executions"]] == [execution_id]


async def test_commands_take_the_session_database_url_option(
    cli: Cli, pgbouncer: PgBouncer
) -> None:
    result = await cli(
        "--session-database-url", pgbouncer.session_url, "stats", "--json",
        env={SESSION_URL_ENV: None},  # restored after the command
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 0
