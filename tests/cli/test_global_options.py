"""Global options before or after the command, for every command; one log format for every
logger, the database driver's included, one line per record."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import typer
from tests.cli.conftest import Cli, run_module
from tests.conformance.helpers import create_root, start_running
from typer.testing import CliRunner

from flowexec.cli import app
from flowexec.cli.app import COMMANDS
from flowexec.store.protocol import ExecutionStore

GLOBAL_OPTIONS = {"--database-url", "--table-prefix", "--json", "--debug", "--log-json",
                  "--log-level"}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_takes_every_global_option(name: str) -> None:
    group = typer.main.get_command(app)
    command = group.get_command(typer.Context(group), name)  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in param.opts}
    assert options >= GLOBAL_OPTIONS, GLOBAL_OPTIONS - options


async def test_global_options_after_the_command_and_its_arguments(
    cli: Cli, store: ExecutionStore
) -> None:
    execution, _ = await start_running(store)
    after = ["--database-url", cli.url, "--table-prefix", cli.prefix]
    runner = CliRunner()
    env = {"COLUMNS": "200", "NO_COLOR": "1", "FLOWEXEC_DATABASE_URL": None}

    async def invoke(*args: str) -> str:
        result = await asyncio.to_thread(runner.invoke, app, list(args), env=env)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result.stdout

    listed = json.loads(await invoke("ls", execution.flow_id, *after, "--json"))
    assert [e["id"] for e in listed["executions"]] == [execution.id]
    shown = json.loads(await invoke("show", execution.id, "--json", *after))
    assert shown["execution"]["status"] == "running"
    assert json.loads(await invoke("stats", *after, "--json"))["active_claims"] == 1
    assert execution.id in await invoke("claims", *after)
    # Before and after mix: the prefix after the command wins over the one before it.
    mixed = json.loads(await invoke("--table-prefix", "other_", "--json", "claims", *after))
    assert [c["execution_id"] for c in mixed["claims"]] == [execution.id]


async def test_a_bad_global_option_after_the_command_is_a_one_line_error(cli: Cli) -> None:
    result = await cli("stats", "--table-prefix", "Not A Prefix")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("flowexec: error: --table-prefix:"), result.stderr


async def test_every_logger_shares_one_format_and_one_line_per_record(
    cli: Cli, store: ExecutionStore, backend: str
) -> None:
    """psycopg's records and flowexec's come out alike: JSON objects with --log-json, else
    `time LEVEL logger message` lines; a multi-line message stays on one line."""
    execution = await create_root(store)
    common = ["--database-url", cli.url, "--table-prefix", cli.prefix, "--debug"]
    as_json = run_module("stop", execution.id, "--reason", "first\nsecond", *common, "--log-json")
    assert as_json.returncode == 0, as_json.stderr
    entries = [json.loads(line) for line in as_json.stderr.splitlines()]
    loggers = {entry["logger"].split(".")[0] for entry in entries}
    assert "flowexec" in loggers, loggers
    if backend == "postgres":
        assert "psycopg" in loggers, loggers
    stopped = next(e for e in entries if e["logger"] == "flowexec.client")
    assert stopped["message"].endswith("first\nsecond") and stopped["execution_id"]

    other = await create_root(store)
    as_text = run_module("stop", other.id, "--reason", "first\nsecond", *common)
    assert as_text.returncode == 0, as_text.stderr
    line_shape = re.compile(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) \S+ "
    )
    lines = as_text.stderr.splitlines()
    assert lines and all(line_shape.match(line) for line in lines), as_text.stderr
    assert any("first\\nsecond" in line for line in lines), as_text.stderr
    if backend == "postgres":
        assert any(" psycopg" in line for line in lines), as_text.stderr
