"""Outages of the test's own PostgreSQL server.

- Stopped and started again while four workers are busy: they reconnect and finish
  everything; nothing is lost, nothing completes twice, and the recovery service works again.
- Refusing writes for a while (read-only, as after a failover): the recovery service outlives
  it and sweeps again once writes are accepted.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from flowexec import ExecutionStatus, StoreUnavailable, open_store
from flowexec.runtime.recovery import RecoveryService
from flowexec.store.protocol import ExecutionStore
from tests.accounting import account, assert_each_ran_once
from tests.marks import create_marks_table, read_marks
from tests.tables import Tables
from tests.worker_app import FLOW, app
from tests.worker_processes import WorkerProcess, stop_processes, wait_all_finished

from .support import LEASE_MS, make_plans, plant_dead_run, wait_recovered, worker_settings

EXECUTIONS = 400
WORKERS = 4
OUTAGE_S = 3 * LEASE_MS / 1000
"""Down for longer than a lease, so that the outage costs leases and recovery must act."""
PROBES = WORKERS * int(worker_settings("postgres")["concurrency"])
PROBE = {"sleeps": [3.0], "children": []}


class OwnServer:
    """A throwaway PostgreSQL server of this test's own, stopped and started with its bundled
    `pg_ctl` (as the user pgserver runs it as when the tests run as root)."""

    def __init__(self, log_dir: Path) -> None:
        import pgserver

        self._ctl_log = log_dir / "pg_ctl.out"
        self._data_dir = tempfile.mkdtemp(prefix="flowexec-restart-")
        self._server = pgserver.get_server(self._data_dir, cleanup_mode="delete")
        self.url: str = self._server.get_uri()
        self.pgdata = Path(self._server.pgdata)
        self._pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
        self._user = self._server.system_user
        [self._socket_dir] = parse_qs(urlsplit(self.url).query)["host"]

    def set_read_only(self, read_only: bool) -> None:
        """Every session, the open ones too, refuses writes (or accepts them again)."""
        setting = (
            "SET default_transaction_read_only = on"
            if read_only
            else "RESET default_transaction_read_only"
        )
        with psycopg.connect(
            self.url, autocommit=True, options="-c default_transaction_read_only=off"
        ) as pg:
            pg.execute(f"ALTER SYSTEM {setting}")
            pg.execute("SELECT pg_reload_conf()")

    def _ctl(self, *args: str, check: bool = True) -> None:
        with self._ctl_log.open("ab") as out:
            subprocess.run(
                [str(self._pg_ctl), "-D", str(self.pgdata), "-w", "-t", "60", *args],
                check=check,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                user=self._user,
                timeout=90,
            )

    def stop(self, *, check: bool = True) -> None:
        self._ctl("-m", "fast", "stop", check=check)

    def start(self) -> None:
        self._ctl(
            "-l", str(self.pgdata / "log"), "-o", f'-h "" -k {self._socket_dir}', "start"
        )

    def cleanup(self) -> None:
        self.stop(check=False)  # whichever postmaster runs now: pgserver knows the first only
        quiet = logging.getLogger("pgserver")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # its own stop finds the server stopped, and says so
        try:
            self._server.cleanup()
        finally:
            quiet.setLevel(level)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServer]:
    server = OwnServer(tmp_path_factory.mktemp("own-server"))
    try:
        yield server
    finally:
        server.cleanup()


@pytest.mark.slow
async def test_workers_reconnect_after_a_database_restart_and_lose_nothing(
    own_server: OwnServer, unique_prefix: str, tmp_path: Path
) -> None:
    url = own_server.url
    create_marks_table(url, unique_prefix)
    tables = Tables(url, unique_prefix)
    plans = make_plans(EXECUTIONS, seed=20_053, long_share=0.3)
    roots: dict[str, Any] = {}
    async with await open_store(url, table_prefix=unique_prefix) as store:
        client = await app.client(store)
        for plan in plans.roots:
            roots[await client.create(FLOW, owner_id="restart", integration=plan)] = plan

    settings = worker_settings("postgres")
    workers = [
        WorkerProcess(url, unique_prefix, f"restart-{n}", tmp_path / "logs", settings, marks=url)
        for n in range(WORKERS)
    ]
    began = time.monotonic()
    try:
        for worker in workers:  # one still opening its store when the server stops would exit
            await worker.wait_started()
        done_before = await _wait_completed(tables, plans.total // 4, workers)
        down_at = time.monotonic()
        await asyncio.to_thread(own_server.stop)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(own_server.start)
        up_at = time.monotonic()
        restarted_wall = time.time()

        await wait_all_finished(tables, plans.total, workers, within=120)
        finished_s = time.monotonic() - up_at
        async with await open_store(url, table_prefix=unique_prefix) as store:
            # Every worker claims again: as many 3 s runs as all of them can hold at once
            # cannot be finished in time without each of them.
            client = await app.client(store)
            probes = [
                await client.create(FLOW, owner_id="probe", integration=PROBE)
                for _ in range(PROBES)
            ]
            probed = [await client.wait(p, timeout=60) for p in probes]
            # The recovery service came back too: a dead run is swept up by some worker.
            ghost_record, _ = await wait_recovered(store, await plant_dead_run(store), within=30)
            stats = await store.get_stats()
        codes = [await w.terminate() for w in workers]
    finally:
        stop_processes(workers)
    assert codes == [0] * WORKERS, "\n".join(w.tail() for w in workers)

    others = {ghost_record.execution_id, *probes}
    marks = [m for m in read_marks(url, unique_prefix) if m[1] not in others]
    executions = await tables.executions()
    recoveries = [r for r in await tables.recoveries() if r.execution_id in executions]
    acc = account(
        root_ids=roots,
        executions={k: v for k, v in executions.items() if v.id not in others},
        recoveries=[r for r in recoveries if r.execution_id not in others],
        marks=marks,
        strict=False,  # a run that met the outage is requeued, sharing its attempt number
    )
    finished_after = {m[2] for m in marks if m[0] == "finish" and m[4] > restarted_wall}
    probed_by = Counter(p.result["worker"] for p in probed)
    reconnect_notes = sum("failed" in w.log() or "unavailable" in w.log() for w in workers)
    print(
        f"\ndatabase restart: {done_before} of {plans.total} completed before the server was "
        f"stopped {down_at - began:.1f} s in; down {up_at - down_at:.1f} s; all finished "
        f"{finished_s:.1f} s after it was back; {acc.summary()}; "
        f"workers finishing runs after the restart: {sorted(finished_after)}; "
        f"probe runs per worker: {dict(sorted(probed_by.items()))}; "
        f"workers that logged the outage: {reconnect_notes}/{WORKERS}"
    )
    assert_each_ran_once(acc, total=plans.total)
    assert stats.active_claims == 0
    assert {p.status for p in probed} == {ExecutionStatus.COMPLETED}
    assert set(probed_by) == {w.worker_id for w in workers}, "every worker claims again"
    assert ghost_record.recovered_by_worker in {w.worker_id for w in workers}


async def _wait_completed(tables: Tables, count: int, workers: list[WorkerProcess]) -> int:
    deadline = time.monotonic() + 60
    while True:
        completed = (await tables.status_counts())["completed"]
        if completed >= count:
            return completed
        assert all(w.alive for w in workers), "\n".join(w.tail() for w in workers)
        assert time.monotonic() < deadline, f"only {completed} completed"
        await asyncio.sleep(0.1)


async def test_recovery_outlives_a_database_that_refuses_writes_for_a_while(
    own_server: OwnServer, unique_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    interval_s = 0.1
    async with await open_store(own_server.url, table_prefix=unique_prefix) as store:
        service = RecoveryService(store, worker_id="rec", interval_s=interval_s)
        with caplog.at_level(logging.WARNING, logger="flowexec.recovery"):
            task = asyncio.create_task(service.run())
            try:
                before, _ = await wait_recovered(store, await plant_dead_run(store), within=10)
                own_server.set_read_only(True)
                try:
                    while not any(r.levelno >= logging.WARNING for r in caplog.records):
                        assert not task.done(), task
                        await asyncio.sleep(interval_s)
                    await asyncio.sleep(5 * interval_s)  # more sweeps meet the read-only database
                    alive_while_read_only = not task.done()
                finally:
                    own_server.set_read_only(False)
                after, _ = await wait_recovered(store, await _plant_when_writable(store), within=10)
            finally:
                service.stop()
                await asyncio.wait_for(task, 5)
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING]
    print(
        f"\nread-only database: {len(failures)} sweeps refused, first: "
        f"{failures[0].getMessage()[:120]!r}; swept again afterwards: {after.recovered_by_worker}"
    )
    assert before.recovered_by_worker == after.recovered_by_worker == "rec"
    assert alive_while_read_only
    assert "read-only" in failures[0].getMessage()


async def _plant_when_writable(store: ExecutionStore) -> str:
    """Each session rereads the configuration on its own after the reload: until the one the
    pool hands out did, it still refuses writes (and a refused plant leaves at most a queued
    execution of a flow no one runs)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return await plant_dead_run(store)
        except StoreUnavailable:  # the store's word for a server that refuses writes
            assert time.monotonic() < deadline, "the database still refuses writes"
            await asyncio.sleep(0.05)
