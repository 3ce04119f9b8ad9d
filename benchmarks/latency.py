"""Workload 3: latency from `create` to the start of the run, on an idle worker.

The worker is the runtime `Worker` with a no-op flow; "started" is the moment the flow function
is entered. For attribution, the same with the bare loop a worker runs: `claim_and_start`, and
when nothing is runnable `wait_for_work` (woken by LISTEN/NOTIFY on Postgres, by polling on
SQLite), where "started" is the moment `claim_and_start` returned the execution. Creator and
worker use separate stores (their own pools, and on Postgres the worker's own listener
connection) in one process; before each create the worker is idle again, so every sample is a
cold wake-up.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol

from benchmarks._common import (
    Context,
    Stats,
    Table,
    Target,
    Workload,
    fmt,
    percentile,
    sqlite_available,
)
from benchmarks._runtime import FLOW, NoopFlow, until_idle, workers
from flowexec.errors import ConfigError
from flowexec.model import Completion, new_execution
from flowexec.runtime import Worker
from flowexec.store.protocol import ExecutionStore
from flowexec.store.sqlite.options import SqliteOptions

WORKER = "bench-latency-worker"
TIMEOUT_MS = 60_000
POLL_S = 1.0
"""The worker's polling fallback; on Postgres a lost notification would cost this much."""
SQLITE_POLL_S = SqliteOptions().commit_poll_interval_s
"""How often an idle SQLite waiter looks for commits, by default."""
TARGET_P50_MS = 10.0
PERCENTILES = (50, 95, 99)


class IdleWorker:
    """claim_and_start (completing what it got last time), then wait for work; records when
    each execution arrived."""

    def __init__(self, store: ExecutionStore) -> None:
        self.store = store
        self.parked = asyncio.Event()
        self.claimed: dict[str, asyncio.Future[float]] = {}

    async def idle(self) -> None:
        await self.parked.wait()
        await asyncio.sleep(0.002)  # now inside wait_for_work

    def expect(self, execution_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.claimed[execution_id] = future
        return future

    async def loop(self) -> None:
        returned: list[Completion] = []
        while True:
            batch = await self.store.claim_and_start(
                WORKER, TIMEOUT_MS, limit=10, complete=returned
            )
            now = time.perf_counter()
            for started in batch.started:
                future = self.claimed.pop(started.claim.execution_id, None)
                if future is not None:
                    future.set_result(now)
            returned = [Completion(s.claim.execution_id, s.claim.epoch) for s in batch.started]
            if not batch.started:
                self.parked.set()
                await self.store.wait_for_work(POLL_S)
                self.parked.clear()


class Probe(Protocol):
    """A worker under test: when it is idle, and when an execution reached it."""

    async def idle(self) -> None: ...

    def expect(self, execution_id: str) -> asyncio.Future[float]: ...


async def samples(creator: ExecutionStore, probe: Probe, count: int, tag: str,
                  jitter_s: float) -> list[float]:
    """Seconds from calling create to the worker starting it, one execution at a time.

    `jitter_s`: a random pause before each create, so that creates land at a random phase of a
    polling worker's cycle (as real ones do) rather than just after it parked.
    """
    out: list[float] = []
    rng = random.Random(7)
    for n in range(count):
        await probe.idle()
        if jitter_s:
            await asyncio.sleep(rng.uniform(0, jitter_s))
        execution = new_execution(FLOW, "bench-owner", id=f"L{tag}-{n:06d}")
        arrived = probe.expect(execution.id)
        started = time.perf_counter()
        await creator.create(execution)
        out.append(await asyncio.wait_for(arrived, 10 * POLL_S) - started)
    return out


class RuntimeProbe:
    def __init__(self, flow: NoopFlow, worker: Worker) -> None:
        self.flow = flow
        self.worker = worker

    async def idle(self) -> None:
        await until_idle([self.worker])

    def expect(self, execution_id: str) -> asyncio.Future[float]:
        return self.flow.expect_start(execution_id)


async def measure(ctx: Context, creator: ExecutionStore, probe: Probe, count: int, name: str
                  ) -> dict[int, Stats]:
    """Percentiles per repetition (after a warm-up), as Stats over repetitions."""
    jitter_s = SQLITE_POLL_S if ctx.backend == "sqlite" else 0.0
    await samples(creator, probe, 20, f"{name}-warm", jitter_s)
    per_rep: dict[int, list[float]] = {p: [] for p in PERCENTILES}
    for rep in range(ctx.reps):
        ctx.log(f"{name}, repetition {rep + 1}: {count} executions")
        ms = [s * 1000 for s in await samples(creator, probe, count, f"{name}{rep}", jitter_s)]
        for p in PERCENTILES:
            per_rep[p].append(percentile(ms, p))
    return {p: Stats.of(v) for p, v in per_rep.items()}


async def _runtime(ctx: Context, creator: ExecutionStore, prefix: str, count: int
                   ) -> dict[int, Stats]:
    flow = NoopFlow()
    async with workers(flow, [ctx.store_url(prefix)], prefix, concurrency=10) as (worker,):
        while True:  # until the worker has opened its store
            try:
                await worker.store.now()
                break
            except ConfigError:
                await asyncio.sleep(0.01)
        return await measure(ctx, creator, RuntimeProbe(flow, worker), count, "Worker")


async def _store_loop(ctx: Context, creator: ExecutionStore, prefix: str, count: int
                      ) -> dict[int, Stats]:
    async with ctx.store(prefix) as worker_store:
        worker = IdleWorker(worker_store)
        task = asyncio.create_task(worker.loop(), name="bench-latency-loop")
        try:
            return await measure(ctx, creator, worker, count, "store loop")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def run(ctx: Context) -> list[Table]:
    path = "LISTEN/NOTIFY" if ctx.backend == "postgres" and ctx.listens else "polling"
    title = f"3. Latency: create -> started on an idle worker ({ctx.backend}, {path}){ctx.route}"
    if ctx.backend == "sqlite" and not sqlite_available():
        table = Table(title, ["result"])
        table.add("skipped: the SQLite backend is not importable yet")
        return [table]
    count = ctx.scale(1_000, 40)
    prefix = ctx.prefix("latency")
    try:
        async with ctx.store(prefix) as creator:
            results = {
                "Worker: create -> flow starts": await _runtime(ctx, creator, prefix, count)
            }
            if ctx.backend == "postgres":  # on SQLite both wait on the same poll
                results["store loop: create -> claimed"] = await _store_loop(
                    ctx, creator, prefix, count)
    finally:
        await ctx.drop(prefix)

    table = Table(title, ["path", *(f"p{p} (ms)" for p in PERCENTILES)])
    for name, stats in results.items():
        table.add(name, *(stats[p].cell() for p in PERCENTILES))
    if ctx.backend == "postgres":
        p50 = next(iter(results.values()))[50].median
        table.targets.append(
            Target(f"p50 < {TARGET_P50_MS:g} ms", f"{fmt(p50)} ms", p50 < TARGET_P50_MS)
        )
    table.notes += [
        f"{count:,} executions per repetition, created one at a time; each percentile is taken "
        "per repetition, then shown as median (min-max) over repetitions.",
        "Includes the create call itself (its insert and commit"
        + (", and the NOTIFY" if ctx.backend == "postgres" else "")
        + "). `claim_and_start` claims and starts in one statement; the Worker then launches "
        "the run and enters the flow. The Worker polls at its default interval"
        + (f", the store loop every {POLL_S:g} s." if ctx.backend == "postgres" else "."),
    ]
    if ctx.backend == "sqlite":
        table.notes.append(
            f"SQLite: each create comes after a random pause of 0-{SQLITE_POLL_S * 1000:g} ms "
            "(the store's poll interval), so it lands at a random phase of the poll."
        )
    return [table]


WORKLOAD = Workload("latency", "Latency", frozenset({"postgres", "sqlite"}), run)
