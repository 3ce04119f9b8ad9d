"""The error contract (one line on stderr, an exit code, no traceback unless --debug) and the
ways in: `flowexec`, `python -m flowexec`, `--version`, the URL from the environment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Cli, assert_one_line_error, run_module
from tests.conformance.helpers import create_root
from typer.testing import CliRunner

from flowexec import __version__
from flowexec.cli import app
from flowexec.store.migrations import load_migrations
from flowexec.store.protocol import ExecutionStore


async def test_bad_database_urls(cli: Cli, tmp_path: Path) -> None:
    for url, code, message in [
        ("mysql://localhost/db", 2, "unsupported database URL scheme 'mysql'"),
        ("just-a-path.db", 2, "is not a database URL"),
        (f"sqlite:///{tmp_path}/no/such/dir/x.db", 3, "there is no SQLite database at"),
        (f"sqlite:///{tmp_path}/absent.db", 3, "there is no SQLite database at"),
    ]:
        broken = Cli(url, cli.prefix)
        for command in (["stats"], ["ls", "flow"], ["show", "EX1"], ["claims"], ["recover"],
                        ["stop", "EX1"], ["worker", "--app", "tests.cli.cli_app:app"]):
            assert_one_line_error(await broken(*command), code, message)
    assert not (tmp_path / "absent.db").exists()  # only `migrate` creates a database
    no_dir = Cli(f"sqlite:///{tmp_path}/no/such/dir/x.db", cli.prefix)
    assert_one_line_error(await no_dir("migrate"), 2, "directory", "does not exist")


async def test_password_never_printed(cli: Cli) -> None:
    result = await Cli("mysql://admin:s3cret@db/x", cli.prefix)("stats")
    line = assert_one_line_error(result, 2, "admin:***@db")
    assert "s3cret" not in line


def test_unreachable_postgres_is_one_line_exit_3() -> None:
    result = run_module("--database-url", "postgresql://flowexec@127.0.0.1:1/nowhere", "stats")
    assert_one_line_error(result, 3, "cannot connect to PostgreSQL at")


async def test_unmigrated_tables_point_to_migrate(cli: Cli) -> None:
    unmigrated = Cli(cli.url, cli.prefix + "never_")
    for command in (["stats"], ["ls", "flow"], ["submit", "flow", "--owner", "o"]):
        assert_one_line_error(await unmigrated(*command), 3, "run `flowexec migrate`")


async def test_bad_table_prefix(cli: Cli) -> None:
    result = await Cli(cli.url, "Bad-Prefix")("stats")
    assert_one_line_error(result, 2, "--table-prefix: table_prefix 'Bad-Prefix' must be")


async def test_invalid_ids_and_values(cli: Cli) -> None:
    assert_one_line_error(await cli("show", " padded "), 2, "surrounding spaces")
    assert_one_line_error(await cli("ls", "x" * 300), 2, "the limit is 255")
    limit = await cli("ls", "flow", "--limit", "0")  # typer's own range check
    assert limit.exit_code == 2 and "Traceback" not in limit.stderr


def test_debug_shows_the_traceback() -> None:
    args = ["--database-url", "mysql://localhost/db", "stats"]
    assert_one_line_error(run_module(*args), 2, "unsupported database URL scheme")
    debug = run_module("--debug", *args)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "ConfigError" in debug.stderr


def test_version_and_help_through_python_m() -> None:
    version = run_module("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"flowexec {__version__}")
    usage = run_module("--help")
    assert usage.returncode == 0
    for command in ("migrate", "worker", "recover", "submit", "start", "stop", "pause", "resume",
                    "ls", "show", "tree", "claims", "stats", "demo"):
        assert command in usage.stdout, command


async def test_url_and_prefix_from_the_environment(cli: Cli, store: ExecutionStore) -> None:
    execution = await create_root(store)
    env = {"FLOWEXEC_DATABASE_URL": cli.url, "FLOWEXEC_TABLE_PREFIX": cli.prefix}
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["show", execution.id, "--json"], env=env
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["execution"]["id"] == execution.id


def test_default_url_is_flowexec_db_in_the_working_directory(tmp_path: Path) -> None:
    """Also: the console script and `python -m flowexec` are the same program."""
    migrated = run_module("migrate", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    every = ", ".join(m.name for m in load_migrations("flowexec.store.sqlite", "flowexec_"))
    assert f"applied {every} to sqlite:///flowexec.db" in migrated.stdout
    assert (tmp_path / "flowexec.db").exists()
    script = Path(sys.executable).with_name("flowexec")
    env = {k: v for k, v in os.environ.items() if k != "FLOWEXEC_DATABASE_URL"}
    stats = subprocess.run(
        [str(script), "--json", "stats"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["total"] == 0
