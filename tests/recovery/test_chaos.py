"""Chaos: four worker processes, a random one SIGKILLed every ~2 s and restarted, while
executions (some emitting children, many running long enough to be mid-run) keep arriving.

At the end every execution is terminal and completed, none is lost or duplicated, no execution
has two completed runs, every run a killed worker held was taken over with a recovery record,
and each execution's failure_count equals its number of recovery records. Their nodes are
durable steps: no node ever ran again after its result was recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flowexec import Client
from flowexec.store.protocol import ExecutionStore
from tests.accounting import account, assert_each_ran_once
from tests.conftest import POOLED_ROUTES
from tests.marks import Mark, new_marks_table, read_marks
from tests.tables import ExecutionRow, Tables, all_finished
from tests.worker_app import FLOW, app
from tests.worker_processes import WorkerProcess, stop_processes, wait_all_finished

from .support import Plans, make_plans, worker_settings

WORKERS = 4
KILL_EVERY_S = (1.5, 2.5)


@dataclass(frozen=True)
class Profile:
    executions: int
    feed_s: float
    """Roots arrive at a steady rate over this long, so that kills keep finding runs in flight."""
    kill_tail_s: float
    """Kills go on this long after the last root arrived (or until everything finished)."""
    seed: int


PROFILES = {
    "postgres": Profile(executions=1_000, feed_s=40.0, kill_tail_s=8.0, seed=20_051),
    "pgbouncer": Profile(executions=400, feed_s=16.0, kill_tail_s=6.0, seed=20_053),
    "sqlite": Profile(executions=300, feed_s=12.0, kill_tail_s=5.0, seed=20_052),
}


@pytest.fixture(params=POOLED_ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    """Through a transaction pooler too, where every worker shares a few server sessions."""
    return str(request.param)


@dataclass
class StepsCheck:
    recorded: int = 0
    replayed: int = 0
    """Recorded nodes whose execution ran again in a later attempt, which replayed them."""
    reran: list[tuple[str, str, list[int], int]] = field(default_factory=list)
    """(execution, node, attempts that ran it, attempt recorded): a run after the record."""
    unrecorded: list[tuple[str, str]] = field(default_factory=list)


async def check_steps(
    tables: Tables, executions: dict[str, ExecutionRow], marks: list[Mark]
) -> StepsCheck:
    """Each `work-<n>` node marks every call and returns its attempt, which is recorded: no
    mark of a later attempt than the recorded one may exist."""
    recorded = await tables.checkpoints()
    ran: dict[tuple[str, str], list[int]] = defaultdict(list)
    for kind, execution_id, _, attempt, _ in marks:
        if kind.startswith("work-"):
            ran[(execution_id, kind)].append(attempt)
    check = StepsCheck(recorded=len(recorded))
    for (execution_id, node_id), attempts in sorted(ran.items()):
        if (execution_id, node_id) not in recorded:
            check.unrecorded.append((execution_id, node_id))
            continue
        recorded_attempt = int(recorded[(execution_id, node_id)])
        if max(attempts) > recorded_attempt:
            check.reran.append((execution_id, node_id, sorted(attempts), recorded_attempt))
        if executions[execution_id].failure_count + 1 > recorded_attempt:
            check.replayed += 1
    return check


async def feed(client: Client, plans: Plans, seconds: float, roots: dict[str, Any]) -> None:
    began = time.monotonic()
    for n, plan in enumerate(plans.roots):
        delay = began + seconds * n / len(plans.roots) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        roots[await client.create(FLOW, owner_id="chaos", integration=plan)] = plan


@pytest.mark.slow
async def test_chaos_kills_lose_and_duplicate_nothing(
    backend: str,
    route: str,
    store: ExecutionStore,
    store_url: str,
    unique_prefix: str,
    tmp_path: Path,
) -> None:
    profile = PROFILES[route]
    marks = new_marks_table(backend, store_url, unique_prefix, tmp_path)
    tables = Tables(store_url, unique_prefix)
    client = await app.client(store)
    plans = make_plans(profile.executions, seed=profile.seed)
    rng = random.Random(profile.seed)
    settings = worker_settings(backend)
    logs = tmp_path / "logs"

    def spawn(slot: int, incarnation: int) -> WorkerProcess:
        return WorkerProcess(
            store_url, unique_prefix, f"chaos-{slot}-{incarnation}", logs, settings, marks=marks
        )

    slots = [spawn(n, 0) for n in range(WORKERS)]
    everyone = list(slots)
    incarnations = Counter[int]()
    killed: list[str] = []
    held_at_kill: list[tuple[str, str, str]] = []  # (victim, execution id, status)
    roots: dict[str, Any] = {}
    began = time.monotonic()
    try:
        feeder = asyncio.create_task(feed(client, plans, profile.feed_s, roots))
        stop_killing = began + profile.feed_s + profile.kill_tail_s
        next_kill = began + rng.uniform(*KILL_EVERY_S)
        while time.monotonic() < stop_killing and not (
            feeder.done() and all_finished(await tables.status_counts(), plans.total)
        ):
            if feeder.done():
                feeder.result()  # a failed create is the test's failure
            dead = [w for w in slots if not w.alive]
            assert not dead, "a worker died on its own:\n" + "\n".join(w.tail() for w in dead)
            if time.monotonic() >= next_kill:
                n = rng.randrange(WORKERS)
                victim = slots[n]
                await victim.kill()
                killed.append(victim.worker_id)
                held_at_kill += [
                    (victim.worker_id, execution_id, status)
                    for execution_id, status in await tables.held_by(victim.worker_id)
                ]
                incarnations[n] += 1
                slots[n] = spawn(n, incarnations[n])
                everyone.append(slots[n])
                next_kill = time.monotonic() + rng.uniform(*KILL_EVERY_S)
            await asyncio.sleep(0.05)
        await feeder
        chaos_s = time.monotonic() - began
        await wait_all_finished(tables, plans.total, slots, within=120)
        finished_s = time.monotonic() - began
        for worker in slots:  # a replacement still starting up would die of SIGTERM
            await worker.wait_started()
        codes = [await w.terminate() for w in slots]
    finally:
        stop_processes(everyone)
    assert codes == [0] * WORKERS, "\n".join(w.tail() for w in slots)

    stats = await store.get_stats()
    executions = await tables.executions()
    recoveries = await tables.recoveries()
    all_marks = read_marks(marks, unique_prefix)
    acc = account(
        root_ids=roots,
        executions=executions,
        recoveries=recoveries,
        marks=all_marks,
    )
    steps = await check_steps(tables, executions, all_marks)

    # Every run a killed worker held when it died: taken over with a recovery record if it
    # had started (running), or simply claimed again from the queue if it had not.
    recorded = {(r.execution_id, r.previous_worker_id) for r in recoveries}
    started_runs = [(v, e) for v, e, status in held_at_kill if status in ("running", "paused")]
    not_started = [(v, e) for v, e, status in held_at_kill if status == "created"]
    untaken = [(v, e) for v, e in started_runs if (e, v) not in recorded]
    worker_ids = {w.worker_id for w in everyone}
    from_killed = sum(r.previous_worker_id in killed for r in recoveries)
    from_live = [r for r in recoveries if r.previous_worker_id not in killed]
    sweepers = [r.recovered_by for r in recoveries]
    handovers = sum(a != b for a, b in itertools.pairwise(sweepers))

    print(
        f"\nchaos[{route}]: roots={len(roots)} children={plans.children} "
        f"kills={len(killed)} {acc.summary()} "
        f"(recoveries from killed workers={from_killed}, leases lost by live workers="
        f"{len(from_live)}) sweeping leaders={len(set(sweepers))} (handovers={handovers}) "
        f"runs held by killed workers={len(held_at_kill)} (started={len(started_runs)}, "
        f"claimed-not-started={len(not_started)}) "
        f"failure_count==records: {'ok' if not acc.problems else 'NO'}; "
        f"kills over {chaos_s:.1f} s, all finished after {finished_s:.1f} s; "
        f"nodes recorded={steps.recorded} replayed by a later attempt={steps.replayed} "
        f"ran again after being recorded={len(steps.reran)}"
    )

    assert_each_ran_once(acc, total=plans.total)
    assert steps.reran == [], f"nodes run again after being recorded: {steps.reran[:10]}"
    assert steps.unrecorded == [], f"ran, never recorded: {steps.unrecorded[:10]}"
    assert steps.replayed > 0, "kills hit runs after some of their nodes completed"
    assert sum(stats.counts_by_status.values()) == plans.total
    assert stats.active_claims == 0
    assert untaken == [], f"killed workers' runs never taken over: {untaken[:10]}"
    assert {r.recovered_by for r in recoveries} <= worker_ids
    assert {r.previous_worker_id for r in recoveries} <= worker_ids
    # The chaos did what it is for: kills hit runs in flight, and recovery took them over.
    assert len(killed) >= int(profile.feed_s / KILL_EVERY_S[1])
    assert started_runs and from_killed >= len(started_runs)
