"""Worker subprocesses for the tests: `worker_app.py` run by this interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKER_APP = Path(__file__).with_name("worker_app.py")
REPO_SRC = Path(__file__).resolve().parents[2] / "src"


def start_worker(
    url: str, prefix: str, worker_id: str, log_dir: Path, **settings: Any
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLOWEXEC_TEST_URL": url,
        "FLOWEXEC_TEST_PREFIX": prefix,
        "FLOWEXEC_TEST_WORKER": json.dumps({"worker_id": worker_id, **settings}),
        "PYTHONPATH": os.pathsep.join([str(REPO_SRC), os.environ.get("PYTHONPATH", "")]),
    }
    log = (log_dir / f"{worker_id}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(WORKER_APP)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def worker_log(log_dir: Path, worker_id: str) -> str:
    return (log_dir / f"{worker_id}.log").read_text(errors="replace")


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """Make sure no worker outlives its test."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)
