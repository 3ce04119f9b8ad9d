"""Workload 2: drain 20,000 executions created in bulk to `completed`, end to end.

flowexec side: WORKERS runtime `Worker`s (concurrency BATCH, each on its own store of one
connection) running a no-op flow; the clock runs from starting them to the last `completed`.
For attribution, the same at store level: each worker loops `claim_and_start`, which completes
the batch it ran before and claims and starts the next, then runs the no-op flow per execution.
Baseline: the minimum a raw-SQL pipeline needs over the same number of connections: one
`UPDATE … WHERE id IN (SELECT … LIMIT BATCH FOR UPDATE SKIP LOCKED) RETURNING id` claim and one
completing `UPDATE … WHERE id = ANY(…)` per batch, the same no-op flow per execution.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from benchmarks._common import (
    Context,
    Stats,
    Table,
    Target,
    Workload,
    fmt,
    noop_flow,
    ratio,
    repeat,
)
from benchmarks._load import Load, count_by_status, load, truncate, wait_for_count
from benchmarks._postgres import AsyncConn, PostgresBench
from benchmarks._runtime import FLOW, NoopFlow, workers
from flowexec.model import Completion
from flowexec.store.protocol import ExecutionStore

WORKERS = 4
BATCH = 10
TIMEOUT_MS = 60_000
TARGET_SHARE = 0.60

_RAW_CLAIM = """
    UPDATE {p}executions SET status = 'running', processing_worker_id = %(worker)s,
        processing_started_at = now(), started_at = now(), updated_at = now()
    WHERE id IN (
        SELECT id FROM {p}executions
        WHERE status = 'created' AND available_at <= now()
        ORDER BY priority, available_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED)
    RETURNING id
"""
_RAW_COMPLETE = """
    UPDATE {p}executions SET status = 'completed', completed_at = now(),
        processing_worker_id = NULL, processing_started_at = NULL, updated_at = now()
    WHERE id = ANY(%(ids)s)
"""


async def store_worker(store: ExecutionStore, worker: str) -> int:
    done = 0
    returned: list[Completion] = []
    while True:
        # Each completion written frees its slot for the same statement's claim.
        batch = await store.claim_and_start(
            worker, TIMEOUT_MS, limit=0 if returned else BATCH, complete=returned
        )
        done += len(batch.completed)
        if not batch.started:
            return done
        returned = []
        for started in batch.started:
            await noop_flow()
            returned.append(Completion(started.claim.execution_id, started.claim.epoch))


async def raw_worker(conn: AsyncConn, prefix: str, worker: str) -> int:
    claim = _RAW_CLAIM.replace("{p}", prefix).encode()
    complete = _RAW_COMPLETE.replace("{p}", prefix).encode()
    done = 0
    while True:
        cur = await conn.execute(claim, {"worker": worker, "limit": BATCH})
        ids = [row[0] for row in await cur.fetchall()]
        if not ids:
            return done
        for _ in ids:
            await noop_flow()
        await conn.execute(complete, {"ids": ids})
        done += len(ids)


class Drain:
    """One repetition of a pipeline: load, drain against the clock (and the CPU), check."""

    def __init__(self, pg: PostgresBench, prefix: str, count: int, route: str = "") -> None:
        self.pg = pg
        self.route = route
        self.prefix = prefix
        self.count = count
        self.cpu: dict[str, list[tuple[float, float]]] = {}
        self.wal: dict[str, list[float]] = {}

    def series(self, name: str, work: Callable[[], Awaitable[int]]
               ) -> tuple[str, Callable[[int], Awaitable[float]]]:
        async def measure(_rep: int) -> float:
            await truncate(self.pg, self.prefix)
            await load(self.pg, self.prefix, Load("D", self.count, status="created", flow_id=FLOW))
            async with self.pg.cpu() as use:
                started = time.perf_counter()
                done = await work()
                elapsed = time.perf_counter() - started
            self.cpu.setdefault(name, []).append(use.per(self.count))
            self.wal.setdefault(name, []).append(use.wal_bytes / self.count)
            statuses = await count_by_status(self.pg, self.prefix)
            if done != self.count or statuses != {"completed": self.count}:
                raise RuntimeError(f"{name} finished {done} of {self.count}: {statuses}")
            return self.count / elapsed

        return name, measure

    def cpu_cell(self, name: str) -> str:
        server = statistics.median(c[0] for c in self.cpu[name])
        client = statistics.median(c[1] for c in self.cpu[name])
        return f"{fmt(server)} + {fmt(client)}"

    def wal_cell(self, name: str) -> str:
        return f"{statistics.median(self.wal[name]):,.0f}"


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    prefix = ctx.prefix("drain")
    count = ctx.scale(20_000, 1_000)
    bench = Drain(pg, prefix, count, ctx.route)
    flow = NoopFlow()
    try:
        async with AsyncExitStack() as stack:
            # Every connection is open before the clock starts, so their CPU can be read.
            stores = [
                await stack.enter_async_context(ctx.store(prefix, pool_min_size=1, pool_max_size=1))
                for _ in range(WORKERS)
            ]
            conns = [await stack.enter_async_context(await pg.connect()) for _ in range(WORKERS)]

            async def runtime(metrics: bool = False) -> int:
                flow.expect_runs(count)
                async with workers(flow, stores, prefix, concurrency=BATCH,
                                   claim_timeout_ms=TIMEOUT_MS, metrics=metrics):
                    await flow.all_ran(timeout_s=max(60.0, count / 100))
                    await wait_for_count(pg, prefix, "completed", count)
                return flow.runs

            async def runtime_with_metrics() -> int:
                return await runtime(metrics=True)

            async def store_loop() -> int:
                return sum(await asyncio.gather(
                    *(store_worker(s, f"bench-worker-{n}") for n, s in enumerate(stores))))

            async def raw() -> int:
                return sum(await asyncio.gather(
                    *(raw_worker(c, prefix, f"bench-worker-{n}") for n, c in enumerate(conns))))

            results = await repeat(ctx.reps, [
                bench.series("runtime", runtime),
                bench.series("metrics", runtime_with_metrics),
                bench.series("flowexec", store_loop),
                bench.series("raw", raw),
            ])
    finally:
        await ctx.drop(prefix)
    return [_table(bench, results)]


def _table(bench: Drain, results: dict[str, Stats]) -> Table:
    table = Table(
        f"2. Drain {bench.count:,} executions ({WORKERS} workers, {WORKERS} connections, "
        f"batch {BATCH}){bench.route}",
        ["pipeline", "executions/s", "share of raw", "CPU per execution, server + client (ms)",
         "WAL per execution (bytes)"],
    )
    rows = (
        ("runtime", f"flowexec Worker x{WORKERS} (concurrency {BATCH}, no-op flow)"),
        ("metrics", "the same Workers, each recording into its own FlowexecMetrics"),
        ("flowexec", "flowexec store loop (claim_and_start completing the previous batch)"),
        ("raw", "raw SQL (SKIP LOCKED claim + completing UPDATE per batch)"),
    )
    for name, label in rows:
        table.add(label, results[name].cell(), f"{ratio(results[name], results['raw']):.0%}",
                  bench.cpu_cell(name), bench.wal_cell(name))
    share = ratio(results["runtime"], results["raw"])
    table.targets.append(Target(f"Worker ≥ {TARGET_SHARE:.0%} of raw", f"{share:.0%}",
                                share >= TARGET_SHARE))
    table.notes += [
        "End to end: from starting the workers to the last `completed`; the executions are "
        "bulk-loaded (one INSERT … SELECT) before each repetition, untimed.",
        f"Statements (and commits) per execution: store loop {1 / BATCH:.1f} (one "
        f"`claim_and_start` per batch of {BATCH}: complete the last batch, claim and start the "
        f"next), raw {2 / BATCH:.1f}. The Worker sends what has returned with its next claim, "
        "so its batches are as large as the runs that returned together; it also polls "
        "statuses every 0.25 s and heartbeats.",
        "CPU: the bench database's server processes and this Python process (which runs all "
        f"{WORKERS} workers) over the timed part, per execution; the two share 2 cores.",
        "WAL: what the server wrote over the timed part, per execution. Both write the "
        "execution row twice (taken, completed; flowexec keeps the lease on that row); "
        "flowexec also logs two events per execution and its rows are wider: that is what "
        "its extra WAL and server CPU pay for.",
        "Metrics: the second row's Workers count every claim, start and outcome and observe "
        "each run's duration in Prometheus counters and histograms (`flowexec.metrics`); "
        "its share against the first row is the hot path's cost of metrics.",
        "The event log is on: every execution also logs `flow:started` and `flow:completed`, "
        "written by the same `claim_and_start` statements, with one NOTIFY per statement.",
    ]
    if bench.route:
        table.notes.append("Through PgBouncer: the flowexec rows; raw SQL stays direct.")
    return table


WORKLOAD = Workload("drain", "Drain", frozenset({"postgres"}), run)
