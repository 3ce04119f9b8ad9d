"""Drive the real `flowexec` command against the test's database and table prefix.

Commands call `asyncio.run`, so the runner runs them on a worker thread; the test itself stays
async and seeds the same database through a store of its own (`store`, from the root conftest).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from tests.cli import cli_app
from typer.testing import CliRunner, Result

from flowexec.cli import app
from flowexec.runtime.worker import Worker
from flowexec.store.protocol import ExecutionStore

WIDE = {"COLUMNS": "200", "NO_COLOR": "1", "FLOWEXEC_DATABASE_URL": None}


@dataclass(frozen=True)
class Cli:
    """`flowexec --database-url <test db> --table-prefix <test prefix> ...`."""

    url: str
    prefix: str

    def global_args(self) -> list[str]:
        return ["--database-url", self.url, "--table-prefix", self.prefix]

    async def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        runner = CliRunner()
        merged = {**WIDE, **(env or {})}
        return await asyncio.to_thread(
            runner.invoke, app, [*self.global_args(), *args], env=merged
        )

    async def ok(self, *args: str) -> Result:
        result = await self(*args)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self.ok(*args, "--json")).stdout)


CliFixture = Callable[..., Awaitable[Result]]


@pytest.fixture
def cli(store_url: str, unique_prefix: str, store: ExecutionStore) -> Cli:
    """Depends on `store` so the tables exist and are dropped after the test."""
    return Cli(store_url, unique_prefix)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process a test starts is gone after it, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def run_module(*args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m flowexec ...` in a real subprocess."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("FLOWEXEC_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "flowexec", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        **kwargs,
    )


def assert_one_line_error(
    result: Result | subprocess.CompletedProcess[str], code: int, *fragments: str
) -> str:
    """The error contract: the exit code, one line on stderr, no traceback, no stdout."""
    exit_code = result.exit_code if isinstance(result, Result) else result.returncode
    stderr = result.stderr
    assert exit_code == code, (exit_code, result.stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("flowexec: error: "), stderr
    assert "Traceback" not in stderr
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


NARROW = {"COLUMNS": "80"}
"""A terminal of 80 columns (what rich assumes when piped, too)."""


def assert_fits_whole(output: str, *whole: str, width: int = 80) -> None:
    """Output for a terminal of `width` columns: no line wider, nothing shortened with an
    ellipsis, and each of `whole` (ids, headers) printed in one piece on some line."""
    lines = output.splitlines()
    too_wide = [line for line in lines if len(line.rstrip()) > width]
    assert not too_wide, too_wide
    assert "…" not in output, output
    for text in whole:
        assert any(text in line for line in lines), (text, output)


@pytest.fixture
async def worker(store: ExecutionStore) -> AsyncIterator[Worker]:
    """A real worker in the test's loop, polling fast so that tests stay short, and registered
    before the test starts (`submit` warns about a flow no live worker serves)."""
    running = Worker(
        cli_app.app, store, worker_id="cli-test-worker", poll_interval_s=0.05,
        recovery=False, install_signal_handlers=False, shutdown_grace_s=1,
    )
    task = asyncio.create_task(running.run())
    async with asyncio.timeout(10):
        while not any(w.worker_id == "cli-test-worker" for w in await store.get_workers()):
            assert not task.done(), "the worker ended before it registered"
            await asyncio.sleep(0.01)
    yield running
    running.stop(force=True)
    await asyncio.wait_for(task, 10)
