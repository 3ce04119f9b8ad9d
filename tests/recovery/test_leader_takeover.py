"""The worker that holds the recovery lock is SIGKILLed: another worker takes the lock and
sweeps within one sweep interval, and the dead leader's own run is taken over and finished."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from flowexec import ExecutionStatus, RecoveryReason
from flowexec.store.protocol import ExecutionStore
from tests.marks import new_marks_table
from tests.worker_app import LINGER, app
from tests.worker_processes import WorkerProcess, stop_processes

from .support import (
    LEASE_MS,
    SWEEP_S,
    plant_dead_run,
    wait_for_mark,
    wait_recovered,
    worker_settings,
)

TAKEOVER_BOUND_S = SWEEP_S + LEASE_MS / 1000 + 2.0
"""One sweep interval, plus a lease, plus a margin for a loaded machine."""


async def test_killing_the_recovery_leader_hands_sweeping_to_another_worker(
    backend: str, store: ExecutionStore, store_url: str, unique_prefix: str, tmp_path: Path
) -> None:
    marks = new_marks_table(backend, store_url, unique_prefix, tmp_path)
    settings = worker_settings(backend)
    logs = tmp_path / "logs"
    client = await app.client(store)

    leader = WorkerProcess(store_url, unique_prefix, "leader", logs, settings, marks=marks)
    followers: list[WorkerProcess] = []
    try:
        await leader.wait_started()
        # Alone, it is the leader: it sweeps up a dead run.
        first, _ = await wait_recovered(store, await plant_dead_run(store), within=10)
        assert first.recovered_by_worker == "leader"

        # It runs something of its own, which will be mid-run when it dies.
        orphan = await client.create(LINGER, owner_id="takeover", integration={"hang_attempts": 1})
        await wait_for_mark(marks, unique_prefix, "start", orphan, "leader", 1, workers=[leader])

        # Two more workers: up and trying for the lock, but the leader keeps sweeping.
        followers = [
            WorkerProcess(store_url, unique_prefix, f"follower-{n}", logs, settings, marks=marks)
            for n in (1, 2)
        ]
        for follower in followers:
            await follower.wait_started()
        await asyncio.sleep(2 * SWEEP_S)  # every follower has tried the lock by now
        second, _ = await wait_recovered(store, await plant_dead_run(store), within=10)
        assert second.recovered_by_worker == "leader"

        await leader.kill()
        killed_at = time.monotonic()
        ghost = await plant_dead_run(store)
        third, seen_at = await wait_recovered(store, ghost, within=30)
        takeover_s = seen_at - killed_at
        new_leader = third.recovered_by_worker

        orphan_record, orphan_seen_at = await wait_recovered(store, orphan, within=30)
        orphan_s = orphan_seen_at - killed_at
        done = await client.wait(orphan, timeout=30)
        orphan_events = await store.get_events(orphan)
        codes = [await f.terminate() for f in followers]
    finally:
        stop_processes([leader, *followers])

    print(
        f"\nleader takeover[{backend}]: {new_leader} swept {takeover_s:.2f} s after the "
        f"leader's SIGKILL (bound {TAKEOVER_BOUND_S:.1f} s: sweep {SWEEP_S} s + lease "
        f"{LEASE_MS / 1000:g} s + 2 s); the dead leader's run recovered after {orphan_s:.2f} s"
    )
    assert new_leader in {f.worker_id for f in followers}
    assert takeover_s < TAKEOVER_BOUND_S
    assert codes == [0, 0], "\n".join(f.tail() for f in followers)

    assert (orphan_record.previous_worker_id, orphan_record.recovery_reason) == (
        "leader", RecoveryReason.EXPIRED_CLAIM
    )
    assert orphan_record.previous_status == "running"
    assert orphan_record.recovered_by_worker == new_leader
    assert done.status is ExecutionStatus.COMPLETED and done.failure_count == 1
    assert done.result["attempt"] == 2
    assert done.result["worker"] in {f.worker_id for f in followers}
    assert len(await store.get_recovery_history(orphan)) == 1

    # The killed worker's attempt, the recovery and the new attempt share one gapless log.
    types = [e.type for e in orphan_events]
    assert [e.index for e in orphan_events] == list(range(len(orphan_events)))
    recovered = types.index("execution:recovered")
    assert types[0] == "flow:started" and types[recovered + 1] == "flow:started"
    assert types[-1] == "flow:completed" and types.count("flow:started") == 2
    assert orphan_events[recovered].data.get("reason") == RecoveryReason.EXPIRED_CLAIM
    first_attempt = orphan_events[0].attempt
    assert all(e.attempt == first_attempt for e in orphan_events[:recovered])
    assert all(e.attempt > first_attempt for e in orphan_events[recovered + 1 :])
