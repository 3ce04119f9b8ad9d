"""`flowexec worker --processes N` as real processes: restarts, recovery, parent death, drain,
the restart limit and recycling. PostgreSQL only: the supervisor does not depend on the backend,
and these tests are the slowest of the command line's."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.cli import group_app
from tests.cli.conftest import Cli
from tests.cli.test_worker_and_recover import finished, spawn, until_all_completed

from flowexec.model import ExecutionStatus
from flowexec.runtime import Client
from flowexec.store.protocol import ExecutionStore

APP = "tests.cli.group_app:app"
FAST_RECOVERY = ["--claim-timeout-ms", "1500", "--heartbeat-ms", "300",
                 "--recovery-interval", "0.2"]

pytestmark = pytest.mark.parametrize("route", ["postgres"], indirect=True)


def alive(pid: int) -> bool:
    """Running: not gone, and not a zombie nobody reaped (a container's init may not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def text_of(log: Path) -> str:
    return log.read_text()


async def until(condition: Callable[[], bool], log: Path, what: str, limit_s: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {limit_s} s\n{text_of(log)}")
        await asyncio.sleep(0.05)


def child_pids(log: Path, count: int) -> list[int]:
    found = re.search(rf"started {count} worker processes: \[([\d, ]+)\]", log.read_text())
    assert found is not None, log.read_text()
    return [int(pid) for pid in found.group(1).split(", ")]


async def started_group(
    cli: Cli, log: Path, processes: list[subprocess.Popen[bytes]], *args: str, count: int = 2
) -> tuple[subprocess.Popen[bytes], list[int]]:
    group = spawn(cli, log, "worker", "--app", APP, "--processes", str(count), *args,
                  processes=processes)
    await until(lambda: log.read_text().count("worker started") >= count, log, "workers started")
    return group, child_pids(log, count)


async def test_a_killed_child_is_restarted_and_its_run_recovered_by_the_group(
    cli: Cli, store: ExecutionStore, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "group.log"
    group, pids = await started_group(cli, log, processes, "--worker-id", "grp",
                                      "--concurrency", "1", *FAST_RECOVERY)
    client = Client(store)
    held = await client.create(group_app.HOLD, owner_id="o")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not (claims := await store.get_active_claims()):
        assert loop.time() < deadline, log.read_text()
        await asyncio.sleep(0.05)
    holder = claims[0].worker_id
    victim, survivor = (pids[0], pids[1]) if holder == "grp-1" else (pids[1], pids[0])

    os.kill(victim, signal.SIGKILL)
    await until_all_completed(store, [held], log)
    result = await client.result(held)
    assert result["attempt"] == 2 and result["pid"] not in (victim,)
    [record] = await store.get_recovery_history(held)
    assert record.previous_worker_id == holder
    assert record.recovered_by_worker in ("grp-1", "grp-2")  # the group's own sweeper

    output = log.read_text()
    assert re.search(rf"worker process {victim} \(slot \d\) exited with -9: restarting", output)
    assert group.poll() is None and alive(survivor)  # nothing else stopped
    assert output.count("worker stopped") == 0
    others = [await client.create(group_app.QUICK, owner_id="o") for _ in range(4)]
    await until_all_completed(store, others, log)

    async def registry_shows_the_group() -> bool:  # the dead child's entry swept
        workers = await store.get_workers()
        return len(workers) == 2 and all(w.live and w.pid != victim for w in workers)

    while not await registry_shows_the_group():
        assert loop.time() < deadline + 20, await store.get_workers()
        await asyncio.sleep(0.05)
    assert survivor in {w.pid for w in await store.get_workers()}

    group.send_signal(signal.SIGTERM)
    assert await finished(group) == 0


async def test_children_do_not_outlive_a_killed_supervisor(
    cli: Cli, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "group.log"
    group, pids = await started_group(cli, log, processes)
    group.kill()
    assert await finished(group) == -signal.SIGKILL
    await until(lambda: not any(alive(pid) for pid in pids), log, "children gone", limit_s=10)
    assert log.read_text().count("the supervisor (pid") == 2


async def test_sigterm_drains_every_child(
    cli: Cli, store: ExecutionStore, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "group.log"
    group, _ = await started_group(cli, log, processes, "--concurrency", "1")
    client = Client(store)
    ids = [await client.create(group_app.STEADY, owner_id="o") for _ in range(2)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while len(await store.get_active_claims()) < 2:
        assert loop.time() < deadline, log.read_text()
        await asyncio.sleep(0.02)

    group.send_signal(signal.SIGTERM)
    assert await finished(group) == 0
    assert (await store.get_statuses(ids)) == dict.fromkeys(ids, ExecutionStatus.COMPLETED)
    output = log.read_text()
    assert "SIGTERM: stopping 2 worker processes gracefully" in output
    assert output.count("worker stopped") == 2 and "restarting" not in output


async def test_children_dying_too_often_stop_the_group(
    cli: Cli, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "group.log"
    group, pids = await started_group(cli, log, processes, "--max-restarts", "1")
    os.kill(pids[0], signal.SIGKILL)
    restarted = re.compile(r"worker process (\d+) started in slot 1")
    await until(lambda: restarted.search(log.read_text()) is not None, log, "restart")
    found = restarted.search(log.read_text())
    assert found is not None
    await until(lambda: log.read_text().count("worker started") >= 3, log, "replacement up")
    os.kill(int(found.group(1)), signal.SIGKILL)

    assert await finished(group) == 128 + signal.SIGKILL
    output = log.read_text()
    assert "2 worker processes died within 60 s, more than the limit of 1 restarts" in output
    assert "stopping the group" in output and not alive(pids[1])


async def test_max_runs_per_process_recycles_the_child(
    cli: Cli, store: ExecutionStore, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "group.log"
    group = spawn(cli, log, "worker", "--app", APP, "--max-runs-per-process", "2",
                  "--concurrency", "1", processes=processes)
    client = Client(store)
    ids = [await client.create(group_app.QUICK, owner_id="o") for _ in range(5)]
    await until_all_completed(store, ids, log, limit_s=40)

    runs_per_pid: dict[int, int] = {}
    for execution_id in ids:
        pid = (await client.result(execution_id))["pid"]
        runs_per_pid[pid] = runs_per_pid.get(pid, 0) + 1
    assert len(runs_per_pid) >= 3 and max(runs_per_pid.values()) <= 2
    output = log.read_text()
    assert "recycling: 2 runs started, the limit; stopping" in output
    assert "recycled itself: starting a new one" in output and "restarting" not in output

    group.send_signal(signal.SIGTERM)
    assert await finished(group) == 0
