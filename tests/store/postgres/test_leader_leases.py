"""Leader election by lease rows with fencing terms, directly and through PgBouncer's
transaction pooling (where a session advisory lock would elect two leaders)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from flowexec import new_execution
from flowexec.store.protocol import ExecutionStore
from tests.recovery.support import plant_dead_run
from tests.worker_processes import REPO_ROOT, REPO_SRC

StoreFactory = Callable[..., Awaitable[ExecutionStore]]
ROUTES = pytest.mark.parametrize("route", ["postgres", "pgbouncer"], indirect=True)
LOCK = 4242


def lease_row(url: str, prefix: str) -> tuple[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT holder, term FROM {prefix}leader_leases WHERE lock_id = %s", [LOCK]
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


@ROUTES
async def test_a_deposed_leaders_writes_change_nothing(
    store_factory: StoreFactory, postgres_url: str, unique_prefix: str
) -> None:
    old, new = await store_factory(), await store_factory()
    assert await old.try_acquire_recovery_lock(LOCK, lease_s=0.3)
    assert not await new.try_acquire_recovery_lock(LOCK, lease_s=0.3)
    _, old_term = lease_row(postgres_url, unique_prefix)
    await asyncio.sleep(0.5)  # the old leader stalls past its lease, still believing it leads
    assert await new.try_acquire_recovery_lock(LOCK, lease_s=30)
    holder, new_term = lease_row(postgres_url, unique_prefix)
    assert new_term == old_term + 1

    dead = await plant_dead_run(old)
    slot = (await old.now()).replace(microsecond=0)
    # Every write the old leader makes as leader carries its term, and is refused.
    assert await old.recover_executions("old-leader", leader=LOCK) == []
    assert await old.expire_old_claims(leader=LOCK) == 0
    assert await old.remove_dead_workers(leader=LOCK) == []
    assert not await old.fill_schedule_slot(
        "nightly", slot, new_execution("scheduled", "o"), leader=LOCK
    )
    assert await old.get_recovery_history(dead) == []
    assert await old.get_last_slots(["nightly"]) == {}
    assert lease_row(postgres_url, unique_prefix) == (holder, new_term)

    # The new leader's go through, and the old one cannot take the lease back while it lives.
    [record] = await new.recover_executions("new-leader", leader=LOCK)
    assert record.execution_id == dead
    assert await new.fill_schedule_slot(
        "nightly", slot + timedelta(hours=1), new_execution("scheduled", "o"), leader=LOCK
    )
    assert not await old.try_acquire_recovery_lock(LOCK)
    assert not await old.release_recovery_lock(LOCK)
    assert await new.release_recovery_lock(LOCK)
    assert await old.try_acquire_recovery_lock(LOCK)
    assert lease_row(postgres_url, unique_prefix)[1] == new_term + 1


@ROUTES
async def test_renewing_keeps_the_term_and_a_lapsed_lease_retaken_gets_a_new_one(
    store_factory: StoreFactory, postgres_url: str, unique_prefix: str
) -> None:
    store = await store_factory()
    assert await store.try_acquire_recovery_lock(LOCK, lease_s=0.3)
    _, first = lease_row(postgres_url, unique_prefix)
    assert await store.try_acquire_recovery_lock(LOCK, lease_s=0.3)
    assert lease_row(postgres_url, unique_prefix)[1] == first
    await asyncio.sleep(0.5)
    # Lapsed: a write under the old term is refused even from its own holder.
    assert await store.expire_old_claims(leader=LOCK) == 0
    assert await store.try_acquire_recovery_lock(LOCK, lease_s=30)
    assert lease_row(postgres_url, unique_prefix)[1] == first + 1


CONTENDERS = 3
SAMPLE_EVERY_S = 0.05
SAMPLE_FOR_S = 20.0
KILL_AT_S = 8.0
LEASE_S = 2.0
TICK_S = 0.25


class Contender:
    def __init__(self, url: str, prefix: str, state: Path, log: Path) -> None:
        self.state = state
        self.log = log
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_SRC), str(REPO_ROOT)])}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.leader_contender", url, prefix, str(LOCK),
                 str(LEASE_S), str(TICK_S), str(state)],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def leads_until(self) -> float:
        try:
            return float(self.state.read_text() or 0)
        except FileNotFoundError:
            return 0.0


@pytest.mark.slow
@pytest.mark.parametrize("route", ["pgbouncer"], indirect=True)
async def test_three_contenders_through_the_pooler_never_make_two_leaders(
    store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    contenders = [
        Contender(store_url, unique_prefix, tmp_path / f"c{n}.state", tmp_path / f"c{n}.log")
        for n in range(CONTENDERS)
    ]
    samples = doubled = 0
    killed: Contender | None = None
    killed_at = replaced_at = None
    try:
        began = time.monotonic()
        while (now := time.monotonic()) < began + SAMPLE_FOR_S:
            for c in contenders:
                assert c.process.poll() is None or c is killed, c.log.read_text()
            live = [c for c in contenders if c is not killed]
            leaders = [c for c in live if c.leads_until() > now]
            samples += 1
            doubled += len(leaders) > 1
            if killed is None and now >= began + KILL_AT_S and leaders:
                killed = leaders[0]
                killed.process.send_signal(signal.SIGKILL)
                killed.process.wait(10)
                killed_at = time.monotonic()
            elif killed_at is not None and replaced_at is None and leaders:
                replaced_at = now
            await asyncio.sleep(SAMPLE_EVERY_S)
    finally:
        for c in contenders:
            if c.process.poll() is None:
                c.process.kill()
                c.process.wait(10)
    assert killed_at is not None and replaced_at is not None
    takeover_s = replaced_at - killed_at
    print(
        f"\nelection through PgBouncer: {samples} samples over {SAMPLE_FOR_S:g} s, "
        f"{doubled} with two leaders; the SIGKILLed leader replaced after {takeover_s:.2f} s "
        f"(lease {LEASE_S:g} s, tick {TICK_S:g} s)"
    )
    assert doubled == 0
    assert samples > SAMPLE_FOR_S / SAMPLE_EVERY_S / 2
    # Replaced within its lease: the lease it last renewed, plus one tick of the next leader.
    assert takeover_s <= LEASE_S + TICK_S + 1.0
