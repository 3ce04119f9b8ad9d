"""Workers on three hosts (network namespaces) reach PostgreSQL through PgBouncer; one host's
link is cut while it runs executions, then healed.

While cut, its leases lapse and the other hosts recover its work (and take over the recovery
leadership if it held it). Once healed, whatever the cut-off worker still writes (completions,
events, checkpoints of runs it no longer owns) is refused by the claim epoch and the leader
term: at the end every execution completed exactly once, nothing lost, nothing doubled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowexec.store.protocol import ExecutionStore
from flowexec.store.urls import redact
from tests.accounting import account, assert_each_ran_once
from tests.marks import create_marks_table, read_marks
from tests.netns import Host, make_hosts, why_not_available
from tests.pgbouncer import HOW_TO_GET, PgBouncer, pgbouncer_program
from tests.tables import Tables
from tests.worker_app import FLOW, app
from tests.worker_processes import WorkerProcess, stop_processes, wait_all_finished

from .support import LEASE_MS, SWEEP_S, make_plans, worker_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.netns,
    pytest.mark.parametrize("route", ["postgres"], indirect=True),
]

HOSTS = 3
EXECUTIONS = 150
FEED_S = 8.0
MIN_RUNNING_AT_CUT = 3
CUT_S = 4 * (LEASE_MS / 1000 + SWEEP_S)
"""Long enough for the cut host's leases to lapse and the others to sweep them, twice over."""


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    reason = why_not_available()
    if reason is not None:
        pytest.skip(reason)
    made = make_hosts(HOSTS)
    try:
        for host in made:
            host.create()
        yield made
    finally:
        for host in made:
            host.remove()


@pytest.fixture
def bouncer(postgres_url: str, hosts: list[Host], tmp_path: Path) -> Iterator[PgBouncer]:
    """A PgBouncer of this test's own, listening where each host reaches the machine."""
    if pgbouncer_program() is None:
        pytest.skip(HOW_TO_GET)
    addresses = ",".join(["127.0.0.1", *(h.gateway for h in hosts)])
    bouncer = PgBouncer(postgres_url, tmp_path / "pgbouncer", listen_addr=addresses)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


async def feed(client: Any, plans: Any, roots: dict[str, Any]) -> None:
    began = time.monotonic()
    for n, plan in enumerate(plans.roots):
        delay = began + FEED_S * n / len(plans.roots) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        roots[await client.create(FLOW, owner_id="hosts", integration=plan)] = plan


async def running_on(tables: Tables, worker: WorkerProcess) -> list[str]:
    return [e for e, status in await tables.held_by(worker.worker_id) if status == "running"]


async def test_a_cut_off_host_loses_its_work_to_the_others_and_changes_nothing_after(
    store: ExecutionStore,
    postgres_url: str,
    unique_prefix: str,
    hosts: list[Host],
    bouncer: PgBouncer,
    tmp_path: Path,
) -> None:
    create_marks_table(postgres_url, unique_prefix)
    tables = Tables(postgres_url, unique_prefix)
    client = await app.client(store)
    plans = make_plans(EXECUTIONS, seed=20_054)
    settings = worker_settings("postgres")
    logs = tmp_path / "logs"
    workers = [
        WorkerProcess(
            bouncer.url_at(host.gateway), unique_prefix, f"host-{n}", logs, settings,
            marks=bouncer.url_at(host.gateway), command_prefix=host.exec_prefix,
        )
        for n, host in enumerate(hosts, start=1)
    ]
    cut_host, cut_worker = hosts[0], workers[0]
    roots: dict[str, Any] = {}
    try:
        for worker in workers:
            await worker.wait_started()
        feeder = asyncio.create_task(feed(client, plans, roots))
        while len(await running_on(tables, cut_worker)) < MIN_RUNNING_AT_CUT:
            assert not feeder.done() or feeder.exception() is None
            await asyncio.sleep(0.05)
        cut_host.cut()
        cut_at = time.monotonic()
        held = await running_on(tables, cut_worker)  # what it held when its link went
        assert held, "the cut host was running nothing"
        await asyncio.sleep(CUT_S)
        taken_over_while_cut = {
            r.execution_id for r in await tables.recoveries()
            if r.previous_worker_id == cut_worker.worker_id
        }
        cut_host.heal()
        await feeder
        await wait_all_finished(tables, plans.total, workers, within=180)
        finished_s = time.monotonic() - cut_at
        codes = [await w.terminate(within=60) for w in workers]
    finally:
        cut_host.heal()
        stop_processes(workers)

    executions = await tables.executions()
    recoveries = await tables.recoveries()
    acc = account(
        root_ids=roots, executions=executions, recoveries=recoveries,
        marks=read_marks(postgres_url, unique_prefix),
    )
    from_cut = [r for r in recoveries if r.previous_worker_id == cut_worker.worker_id]
    print(
        f"\nhosts: 3 through PgBouncer at {redact(bouncer.url)}; {cut_worker.worker_id} cut "
        f"for {CUT_S:.1f} s holding {len(held)} running; {len(taken_over_while_cut)} of its "
        f"runs taken over while cut, by {sorted({r.recovered_by for r in from_cut})}; all "
        f"finished {finished_s:.1f} s after the cut; {acc.summary()}"
    )
    assert codes == [0] * HOSTS, "\n".join(w.tail() for w in workers)
    assert_each_ran_once(acc, total=plans.total)
    assert set(held) <= taken_over_while_cut
    assert {r.recovered_by for r in from_cut} <= {"host-2", "host-3"}
    stats = await store.get_stats()
    assert stats.active_claims == 0
