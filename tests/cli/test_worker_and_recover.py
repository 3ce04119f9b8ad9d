"""`flowexec worker` and `flowexec recover --loop` as real processes, stopped by real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli import cli_app
from tests.cli.conftest import Cli, assert_one_line_error
from tests.conformance.helpers import start_running, wait_for_lease_end

from flowexec.model import ExecutionStatus, new_execution
from flowexec.runtime import Client
from flowexec.store.protocol import ExecutionStore

REPO = Path(__file__).resolve().parents[2]
S = ExecutionStatus


def spawn(
    cli: Cli, log: Path, *args: str, processes: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flowexec", *cli.global_args(), *args],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    processes.append(process)
    return process


async def finished(process: subprocess.Popen[bytes], limit_s: float = 20) -> int:
    return await asyncio.to_thread(process.wait, limit_s)


async def until_all_completed(
    store: ExecutionStore, ids: list[str], log: Path, limit_s: float = 20
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        statuses = await store.get_statuses(ids)
        if all(statuses.get(i) is S.COMPLETED for i in ids):
            return
        if loop.time() > deadline:
            output = await asyncio.to_thread(log.read_text)
            raise AssertionError(f"not all completed: {statuses}\n{output}")
        await asyncio.sleep(0.05)


async def test_worker_runs_flows_and_stops_gracefully_on_sigterm(
    cli: Cli, store: ExecutionStore, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "worker.log"
    worker = spawn(cli, log, "worker", "--app", "tests.cli.cli_app:app", "--worker-id", "cli-w",
                   "--concurrency", "4", processes=processes)
    client = Client(store)
    ids = [await client.create(cli_app.ECHO, owner_id="o") for _ in range(5)]
    await until_all_completed(store, ids, log)
    assert {(await client.result(i))["worker"] for i in ids} == {"cli-w"}

    worker.send_signal(signal.SIGTERM)
    assert await finished(worker) == 0
    output = log.read_text()
    assert "SIGTERM" in output and "worker stopped" in output and "worker_id=cli-w" in output


async def test_worker_processes_share_the_work(
    cli: Cli, store: ExecutionStore, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "group.log"
    group = spawn(cli, log, "worker", "--app", "tests.cli.cli_app:app", "--processes", "2",
                  "--worker-id", "grp", "--concurrency", "1", processes=processes)
    client = Client(store)
    ids = [
        await client.create(cli_app.SLOW, owner_id="o", integration={"step_s": 0.04})
        for _ in range(4)
    ]
    await until_all_completed(store, ids, log)
    assert {(await client.result(i))["worker"] for i in ids} == {"grp-1", "grp-2"}
    group.send_signal(signal.SIGTERM)
    assert await finished(group) == 0


async def test_worker_group_stops_gracefully_on_sigterm(
    cli: Cli, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "group.log"
    group = spawn(cli, log, "worker", "--app", "tests.cli.cli_app:app", "--processes", "2",
                  processes=processes)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while log.read_text().count("worker started") < 2:
        assert loop.time() < deadline and group.poll() is None, log.read_text()
        await asyncio.sleep(0.05)
    group.send_signal(signal.SIGTERM)
    assert await finished(group) == 0
    assert log.read_text().count("worker stopped") == 2


async def test_recover_loop_requeues_a_dead_workers_run_until_sigterm(
    cli: Cli, store: ExecutionStore, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    queued = new_execution("flow-a", "owner")
    await store.create(queued)  # merely waiting: never touched
    dead, lease = await start_running(store, worker_id="dead-worker", timeout_ms=100)
    await wait_for_lease_end(store, lease)

    log = tmp_path / "recover.log"
    sweeper = spawn(cli, log, "recover", "--loop", "--interval", "0.1",
                    "--worker-id", "sweeper", processes=processes)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not await store.get_recovery_history(dead.id):
        assert loop.time() < deadline and sweeper.poll() is None, log.read_text()
        await asyncio.sleep(0.05)
    [record] = await store.get_recovery_history(dead.id)
    assert (record.recovered_by_worker, record.previous_worker_id) == ("sweeper", "dead-worker")
    recovered = await store.get(dead.id)
    assert recovered is not None and recovered.status is S.CREATED
    assert recovered.failure_count == 1
    assert await store.get_recovery_history(queued.id) == []

    sweeper.send_signal(signal.SIGTERM)
    assert await finished(sweeper) == 0
    assert "recovering as sweeper every 0.1s" in log.read_text()


async def test_recover_once_reports_what_it_did(cli: Cli, store: ExecutionStore) -> None:
    dead, lease = await start_running(store, worker_id="dead-worker", timeout_ms=100)
    await wait_for_lease_end(store, lease)
    report = await cli.json("recover", "--worker-id", "once")
    assert report["leader"] is True and report["requeued"] == 1 and report["failed"] == 0
    assert "requeued 0 executions" in (await cli.ok("recover")).stdout

    lock_id = 0x666C6F77  # the sweeper lock, held by another installation member
    assert await store.try_acquire_recovery_lock(lock_id)
    try:
        assert (await cli.json("recover"))["leader"] is False
        assert "another sweeper holds the recovery lock" in (await cli.ok("recover")).stdout
    finally:
        await store.release_recovery_lock(lock_id)
    assert (await store.get(dead.id)).failure_count == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("app_spec", "message"),
    [
        ("tests.cli.no_such_module:app", "no module named 'tests.cli.no_such_module'"),
        ("tests.cli.cli_app:missing", "has no 'missing'"),
        ("tests.cli.cli_app:not_an_app", "is a str, not a flowexec App"),
        ("tests.cli.cli_app:empty_app", "the app registers no flows"),
        ("justamodule", "must look like module:attribute"),
    ],
)
async def test_worker_refuses_a_bad_app(cli: Cli, app_spec: str, message: str) -> None:
    assert_one_line_error(await cli("worker", "--app", app_spec), 2, message)


async def test_worker_refuses_a_heartbeat_slower_than_its_lease(cli: Cli) -> None:
    result = await cli("worker", "--app", "tests.cli.cli_app:app",
                       "--claim-timeout-ms", "1000", "--heartbeat-ms", "1000")
    assert_one_line_error(result, 2, "heartbeat_interval_ms")
