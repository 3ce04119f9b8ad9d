"""Shared pieces of the recovery tests: worker settings, dead runs, waiting on recovery and
marks, and plans of work."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flowexec import (
    ExecutionStatus,
    ExecutionStore,
    RecoveryRecord,
    UpdateExecutionStatusParams,
    new_execution,
)
from tests.marks import read_marks
from tests.worker_app import GHOST
from tests.worker_processes import WorkerProcess

LEASE_MS = 1_000
SWEEP_S = 0.5

FAST_RECOVERY: dict[str, Any] = {
    "concurrency": 16,
    "claim_timeout_ms": LEASE_MS,
    "heartbeat_interval_ms": 250,
    "recovery_interval_s": SWEEP_S,
    "recovery_max_failures": 1_000,  # nothing in these tests may legitimately fail
    "retry_backoff_base_ms": 100,
    "retry_backoff_max_ms": 2_000,
    "control_interval_s": 0.25,
    "shutdown_grace_s": 5.0,
}
"""Short leases and a quick sweep, so that a killed worker's runs come back within seconds."""

POSTGRES_POOL = {"pool_max_size": 6}
"""Four workers, their marks and the test stay well under the server's 100 connections."""


def worker_settings(backend: str, **overrides: Any) -> dict[str, Any]:
    settings = {**FAST_RECOVERY, **(POSTGRES_POOL if backend == "postgres" else {})}
    settings.update(overrides)
    return settings


# ------------------------------------------------------------------ planting and waiting


async def plant_dead_run(store: ExecutionStore, worker_id: str = "ghost-worker") -> str:
    """A `running` execution whose worker is gone: its 1 ms lease has run out already. Its
    flow is one no worker runs, so only recovery will ever move it."""
    execution = new_execution(GHOST, "ghosts")
    await store.create(execution)
    claim = await store.claim_execution(execution.id, worker_id, 1)
    assert claim is not None
    await store.update_execution_status(
        UpdateExecutionStatusParams(
            execution.id, ExecutionStatus.RUNNING, worker_id=worker_id, epoch=claim.epoch
        )
    )
    return execution.id


async def wait_recovered(
    store: ExecutionStore, execution_id: str, *, within: float = 30
) -> tuple[RecoveryRecord, float]:
    """The first recovery record of `execution_id`, and when (monotonic) the test saw it."""
    deadline = time.monotonic() + within
    while True:
        history = await store.get_recovery_history(execution_id)
        if history:
            return history[0], time.monotonic()
        assert time.monotonic() < deadline, f"{execution_id} not recovered within {within} s"
        await asyncio.sleep(0.01)


async def wait_for_mark(
    marks: str, prefix: str, kind: str, execution_id: str, worker_id: str, attempt: int,
    *, workers: Iterable[WorkerProcess] = (), within: float = 30,
) -> None:
    """Until the run (`worker_id`, `attempt`) of `execution_id` wrote its `kind` mark."""
    wanted = (kind, execution_id, worker_id, attempt)
    deadline = time.monotonic() + within
    while True:
        got = await asyncio.to_thread(read_marks, marks, prefix)
        if wanted in {m[:4] for m in got}:
            return
        assert time.monotonic() < deadline, (
            f"no {kind} mark of {execution_id} by {worker_id} (attempt {attempt}): {got}\n"
            + "\n".join(w.tail() for w in workers)
        )
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ plans


@dataclass
class Plans:
    """Roots to create, each with its integration (the plan of the root and its children)."""

    roots: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(1 + len(p["children"]) for p in self.roots)

    @property
    def children(self) -> int:
        return self.total - len(self.roots)


def _sleeps(rng: random.Random, long_share: float) -> list[float]:
    if rng.random() < long_share:  # 0.2-1.5 s over 2-3 nodes: likely mid-run at a kill
        total = rng.uniform(0.2, 1.5)
        parts = rng.randint(2, 3)
        return [round(total / parts, 3)] * parts
    return [round(rng.uniform(0, 0.02), 3)]


def make_plans(
    total: int, *, seed: int, parent_share: float = 0.15, long_share: float = 0.4
) -> Plans:
    """`total` executions: roots, some of which emit 2-4 children."""
    rng = random.Random(seed)
    plans = Plans()
    made = 0
    while made < total:
        fan = rng.randint(2, 4) if rng.random() < parent_share else 0
        fan = min(fan, total - made - 1)
        children = [{"i": i, "sleeps": _sleeps(rng, long_share)} for i in range(fan)]
        plans.roots.append({"sleeps": _sleeps(rng, long_share), "children": children})
        made += 1 + fan
    return plans
