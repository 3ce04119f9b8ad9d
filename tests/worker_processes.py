"""Worker OS processes running `tests.worker_app`, and waiting on what they do."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg

from tests import worker_app
from tests.tables import Tables, all_finished

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_SRC = REPO_ROOT / "src"


class WorkerProcess:
    """One worker process, logging to `<log_dir>/<worker_id>.log`; its runs write their marks
    to `marks` (see `tests.marks`), if given."""

    def __init__(
        self,
        url: str,
        prefix: str,
        worker_id: str,
        log_dir: Path,
        settings: dict[str, Any],
        *,
        marks: str | None = None,
        env: dict[str, str] | None = None,
        command_prefix: list[str] | None = None,
    ) -> None:
        """`env`: more environment; `command_prefix`: what runs the worker (e.g. `ip netns
        exec <host>`, a worker on another network host)."""
        self.worker_id = worker_id
        self.log_dir = log_dir
        env = {
            **os.environ,
            worker_app.URL_ENV: url,
            worker_app.PREFIX_ENV: prefix,
            worker_app.WORKER_ENV: json.dumps({"worker_id": worker_id, **settings}),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_SRC), str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
            ),
            **(env or {}),
        }
        if marks is not None:
            env[worker_app.MARKS_ENV] = marks
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"{worker_id}.log").open("wb") as log:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [*(command_prefix or []), sys.executable, "-m", worker_app.__name__],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return (self.log_dir / f"{self.worker_id}.log").read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.worker_id} ---\n{self.log()[-chars:]}"

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def exit_code(self, within: float) -> int:
        return await asyncio.to_thread(self.process.wait, within)

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs; the kernel closes its sockets and file locks."""
        self.signal(signal.SIGKILL)
        await self.exit_code(10)

    async def terminate(self, *, within: float = 30) -> int:
        """SIGTERM, a graceful shutdown; the exit code."""
        self.signal(signal.SIGTERM)
        return await self.exit_code(within)

    async def wait_started(self, within: float = 30) -> None:
        """Until the worker has opened its store and entered its loops."""
        deadline = time.monotonic() + within
        while "worker started" not in self.log():
            assert self.alive, self.tail()
            assert time.monotonic() < deadline, f"{self.worker_id} did not start\n{self.tail()}"
            await asyncio.sleep(0.05)


def stop_processes(workers: Iterable[WorkerProcess]) -> None:
    """Make sure no worker outlives its test."""
    for worker in workers:
        if worker.alive:
            worker.process.kill()
            worker.process.wait(10)


async def wait_all_finished(
    tables: Tables,
    expected_total: int,
    workers: list[WorkerProcess],
    *,
    within: float,
    what: str = "every execution to finish",
) -> None:
    """Until `expected_total` executions exist and all are terminal; every worker must live."""
    deadline = time.monotonic() + within
    counts: Counter[str] = Counter()
    while True:
        try:
            counts = await tables.status_counts()
        except (psycopg.OperationalError, sqlite3.OperationalError):
            counts = Counter()  # the database is restarting: look again
        if all_finished(counts, expected_total):
            return
        dead = [w for w in workers if not w.alive]
        assert not dead, "a worker died on its own:\n" + "\n".join(w.tail() for w in dead)
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what}: {dict(counts)} of {expected_total}\n"
            + "\n".join(w.tail(1500) for w in workers)
        )
        await asyncio.sleep(0.25)
