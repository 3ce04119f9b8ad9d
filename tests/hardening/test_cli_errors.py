"""Every command with bad arguments ends in one line on stderr and an exit code, never a
traceback (unless `--debug`): wrong values, ids no backend can store, JSON with NUL, and
command-line bytes that are not UTF-8 (Python hands them over as lone surrogates)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from flowexec.cli import app
from flowexec.cli.app import COMMANDS

NOT_UTF8 = "bad\udcff\udcfe"
"""What `flowexec show $'bad\\xff\\xfe'` hands the program."""

BAD_ARGUMENTS: dict[str, list[list[str]]] = {
    "migrate": [["--bogus"], ["extra"]],
    "worker": [
        ["--app", NOT_UTF8],
        ["--app", "no.such.module:app"],
        ["--app", "tests.cli.cli_app:app", "--concurrency", "0"],
        ["--app", "tests.cli.cli_app:app", "--processes", "abc"],
        ["--app", "tests.cli.cli_app:app", "--max-runs-per-process", "0"],
        ["--app", "tests.cli.cli_app:app", "--max-restarts", "-1"],
        ["--app", "tests.cli.cli_app:app", "--restart-window", "0"],
        ["--app", "tests.cli.cli_app:app", "--processes", "2", "--restart-window", "nan"],
        ["--app", "tests.cli.cli_app:app", "--processes", "2", "--heartbeat-ms", "99999"],
        ["--app", "tests.cli.cli_app:app", "--recovery-interval", "nan"],
    ],
    "recover": [["--interval", "nan"], ["--max-failures", "0"], ["--worker-id", NOT_UTF8]],
    "submit": [
        ["flow", "--owner", NOT_UTF8],
        [NOT_UTF8, "--owner", "o"],
        ["flow", "--owner", "o", "--integration", '{"a": "\\u0000"}'],
        ["flow", "--owner", "o", "--integration", '{"a": "\\ud800"}'],
        ["flow", "--owner", "o", "--integration", "[" * 5000 + "]" * 5000],
        ["flow", "--owner", "o", "--integration", '{"n": NaN}'],
        ["flow", "--owner", "o", "--event", f"e={NOT_UTF8}"],
        ["flow", "--owner", "o", "--options", '{"execution": {"node_timeout_ms": 1e400}}'],
        ["flow", "--owner", "o", "--wait", "--timeout", "-1"],
        ["flow", "--owner", "o", "--force", "extra"],
        ["flow", "--owner", "o", "--at", NOT_UTF8],
        ["flow", "--owner", "o", "--in", "-5m"],
        ["flow", "--owner", "o", "--key", "k\x00"],
        ["flow", "--owner", "o", "--priority", "99999999"],
    ],
    "start": [[NOT_UTF8], ["a\x00b"], ["x" * 300]],
    "stop": [[NOT_UTF8], [" padded "], ["id", "--reason", "r\x00"]],
    "pause": [[NOT_UTF8], [""]],
    "resume": [[NOT_UTF8], ["\ud800"]],
    "retry": [[NOT_UTF8], ["a\x00b"], ["id", "--bogus"]],
    "delete": [[NOT_UTF8], [" padded "], ["EX-none", "--force"]],
    "purge": [[], ["--older-than", "soon"], ["--older-than", "7d", "--status", "queued"],
              ["--older-than", "7d", "--status", NOT_UTF8], ["--older-than", "99999999999w"],
              ["--older-than", "1d", "--batch-size", "0"]],
    "ls": [[NOT_UTF8], ["flow", "--limit", "0"], ["flow", "--after", NOT_UTF8],
           ["flow", "--after", "not-a-cursor"], ["flow", "--owner", NOT_UTF8]],
    "show": [[NOT_UTF8], ["a\nb"]],
    "tree": [[NOT_UTF8], ["id", "--max-nodes", "-5"]],
    "events": [[NOT_UTF8], ["id", "--from", "-1"], ["id", "--type", "no:such-type"],
               ["id", "--type", NOT_UTF8], ["a\x00b", "--follow"]],
    "claims": [["--worker", NOT_UTF8], ["--bogus"]],
    "stats": [["--bogus"], ["extra"]],
    "workers": [["--bogus"], ["extra"]],
    "demo": [["--bogus"], ["--runs", "abc"]],
    "serve": [[], ["--port", "0"], ["--workers", "0"], ["--insecure-no-auth", "--host", NOT_UTF8],
              ["--insecure-no-auth", "--host", "0.0.0.0"], ["--shutdown-grace", "-1"]],
    "tokens": [["create"], ["create", "--owner", NOT_UTF8], ["create", "--owner", "o", "--name",
               "has space"], ["revoke", "nope"], ["revoke", NOT_UTF8], ["bogus"]],
    "schedules": [["--app", NOT_UTF8], ["--app", "tests.cli.cli_app:not_an_app"], []],
}
GLOBAL_MISTAKES: list[list[str]] = [
    ["--table-prefix", "ok_prefix\n", "ls", "flow"],
    ["--table-prefix", NOT_UTF8, "stats"],
    ["--database-url", f"sqlite:///{NOT_UTF8}.db", "stats"],
    ["--database-url", "postgresql://", "stats"],
    ["--database-url", "postgresql://u:pw@127.0.0.1:1/db?password=x", "stats"],
    ["--database-url", "host=x password=y", "stats"],
    ["--database-url", f"sqlite:///{'n' * 5000}.db", "migrate"],
    ["--database-url", "sqlite:///:memory:", "bogus-command"],
    ["stats", "--table-prefix", "Bad Prefix"],
    ["stats", "--log-level", "loud"],
]


def test_every_command_has_bad_arguments_here() -> None:
    assert set(BAD_ARGUMENTS) == set(COMMANDS)


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert CliRunner().invoke(app, ["--database-url", url, "migrate"]).exit_code == 0
    return url


def _invoke(*args: str) -> Result:
    env = {"COLUMNS": "200", "NO_COLOR": "1", "FLOWEXEC_DATABASE_URL": None}
    return CliRunner().invoke(app, list(args), env=env)


def _assert_no_traceback(result: Result, args: tuple[str, ...]) -> None:
    where = (args, result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.exit_code in (1, 2, 3), where
    assert isinstance(result.exception, SystemExit), where  # not an exception let through
    assert "Traceback" not in result.output and "Traceback" not in result.stderr, where
    assert "pw" not in result.stderr.replace("password", ""), where


@pytest.mark.parametrize(
    ("command", "args"),
    [(command, args) for command, cases in BAD_ARGUMENTS.items() for args in cases],
)
def test_bad_arguments_are_one_line_errors(database: str, command: str, args: list[str]) -> None:
    full = ("--database-url", database, command, *args)
    _assert_no_traceback(_invoke(*full), full)


@pytest.mark.parametrize("args", GLOBAL_MISTAKES)
def test_bad_global_options_are_one_line_errors(args: list[str]) -> None:
    _assert_no_traceback(_invoke(*args), tuple(args))


def test_an_unexpected_error_is_one_line_and_debug_shows_it(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(COMMANDS, "explode", ("tests.hardening.exploding", "explode"))
    quiet = _invoke("--database-url", database, "explode")
    _assert_no_traceback(quiet, ("explode",))
    assert quiet.exit_code == 1
    [line] = quiet.stderr.strip().splitlines()
    assert line.startswith("flowexec: error: unexpected RuntimeError:")
    assert "s3cret" not in line and "***" in line
    loud = _invoke("--debug", "--database-url", database, "explode")
    assert isinstance(loud.exception, RuntimeError)


def test_bytes_that_are_not_utf8_in_a_real_process(database: str) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("FLOWEXEC_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "flowexec", "--database-url", database, "show", b"bad\xff\xfe"],
        capture_output=True,
        timeout=60,
        check=False,
        env=env,
    )
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
