"""Workload 3: latency from `create` to the start of the run, on an idle worker.

Until the runtime Worker lands, the worker is the loop a worker runs: `claim_next`, and when
nothing is runnable `wait_for_work` (woken by LISTEN/NOTIFY on Postgres, by polling on SQLite).
"Started" is the moment `claim_next` returned the execution. Creator and worker are two stores
(two pools, and on Postgres the worker's own listener connection) in one process; the creator
waits until the worker is idle again before the next create, so every sample is a cold wake-up.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks._common import (
    Context,
    Stats,
    Table,
    Target,
    Workload,
    fenced,
    fmt,
    percentile,
    sqlite_available,
)
from flowexec.model import ExecutionStatus, new_execution
from flowexec.store.protocol import ExecutionStore

WORKER = "bench-latency-worker"
TIMEOUT_MS = 60_000
POLL_S = 1.0
"""The worker's polling fallback; on Postgres a lost notification would cost this much."""
TARGET_P50_MS = 10.0
PERCENTILES = (50, 95, 99)


class IdleWorker:
    """claim_next, finish what it got, then wait for work; records when each claim arrived."""

    def __init__(self, store: ExecutionStore) -> None:
        self.store = store
        self.idle = asyncio.Event()
        self.claimed: dict[str, asyncio.Future[float]] = {}

    def expect(self, execution_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.claimed[execution_id] = future
        return future

    async def loop(self) -> None:
        while True:
            claims = await self.store.claim_next(WORKER, TIMEOUT_MS, limit=10)
            now = time.perf_counter()
            for claim in claims:
                future = self.claimed.pop(claim.execution_id, None)
                if future is not None:
                    future.set_result(now)
            for claim in claims:
                await self.store.update_execution_status(fenced(claim, ExecutionStatus.RUNNING))
                await self.store.update_execution_status(
                    fenced(claim, ExecutionStatus.COMPLETED)
                )
            if not claims:
                self.idle.set()
                await self.store.wait_for_work(POLL_S)
                self.idle.clear()


async def samples(creator: ExecutionStore, worker: IdleWorker, count: int, tag: str) -> list[float]:
    """Seconds from calling create to the worker holding the claim, one execution at a time."""
    out: list[float] = []
    for n in range(count):
        await worker.idle.wait()
        await asyncio.sleep(0.002)  # the worker is parked in wait_for_work
        execution = new_execution("bench-latency-flow", "bench-owner", id=f"L{tag}-{n:06d}")
        arrived = worker.expect(execution.id)
        started = time.perf_counter()
        await creator.create(execution)
        out.append(await asyncio.wait_for(arrived, 10 * POLL_S) - started)
    return out


async def run(ctx: Context) -> list[Table]:
    path = "LISTEN/NOTIFY" if ctx.backend == "postgres" else "polling"
    title = f"3. Latency: create -> started on an idle worker ({ctx.backend}, {path})"
    if ctx.backend == "sqlite" and not sqlite_available():
        table = Table(title, ["result"])
        table.add("skipped: the SQLite backend is not importable yet")
        return [table]
    count = ctx.scale(1_000, 40)
    prefix = ctx.prefix("latency")
    per_rep: dict[int, list[float]] = {p: [] for p in PERCENTILES}
    try:
        async with ctx.store(prefix) as creator, ctx.store(prefix) as worker_store:
            worker = IdleWorker(worker_store)
            task = asyncio.create_task(worker.loop(), name="bench-latency-worker")
            try:
                await samples(creator, worker, 20, "warm")
                for rep in range(ctx.reps):
                    ctx.log(f"repetition {rep + 1}: {count} executions")
                    ms = [s * 1000 for s in await samples(creator, worker, count, str(rep))]
                    for p in PERCENTILES:
                        per_rep[p].append(percentile(ms, p))
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        await ctx.drop(prefix)

    stats = {p: Stats.of(v) for p, v in per_rep.items()}
    table = Table(title, ["percentile", "latency (ms)"])
    for p, s in stats.items():
        table.add(f"p{p}", s.cell())
    if ctx.backend == "postgres":
        p50 = stats[50].median
        table.targets.append(
            Target(f"p50 < {TARGET_P50_MS:g} ms", f"{fmt(p50)} ms", p50 < TARGET_P50_MS)
        )
    table.notes += [
        f"{count:,} executions per repetition, created one at a time; each percentile is taken "
        "per repetition, then shown as median (min-max) over repetitions.",
        "Includes the create call itself (its insert, commit and NOTIFY) and the claim_next "
        f"round trip; the worker's polling fallback is {POLL_S:g} s.",
    ]
    return [table]


WORKLOAD = Workload("latency", "Latency", frozenset({"postgres", "sqlite"}), run)
