"""Workload 6: recovery sweep of 10,000 executions whose worker died.

Each repetition loads 10,000 `running` executions held by a dead worker (active claims whose
lease expired), then calls `recover_executions(limit=batch)` until it returns nothing, and checks
that every one is back in the queue with one recorded failure. Timed: the whole sweep.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from benchmarks._common import Context, Stats, Table, Workload, fmt, repeat
from benchmarks._load import Load, count_by_status, load, truncate
from benchmarks._postgres import PostgresBench
from flowexec.store.protocol import ExecutionStore

WORKER = "bench-recovery-worker"
BATCHES = (100, 1_000)


async def sweep(pg: PostgresBench, store: ExecutionStore, prefix: str, count: int,
                batch: int) -> float:
    """Seconds to recover `count` dead executions in batches of `batch`."""
    await truncate(pg, prefix)
    await load(pg, prefix, Load("R", count, status="running", claim="active"))
    recovered = 0
    started = time.perf_counter()
    while records := await store.recover_executions(WORKER, limit=batch):
        recovered += len(records)
    elapsed = time.perf_counter() - started
    statuses = await count_by_status(pg, prefix)
    if recovered != count or statuses != {"created": count}:
        raise RuntimeError(f"recovered {recovered} of {count}: {statuses}")
    return elapsed


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    prefix = ctx.prefix("recovery")
    count = ctx.scale(10_000, 500)

    def timed(store: ExecutionStore, batch: int) -> Callable[[int], Awaitable[float]]:
        return lambda _rep: sweep(pg, store, prefix, count, batch)

    try:
        async with ctx.store(prefix, pool_min_size=1, pool_max_size=1) as store:
            results = await repeat(ctx.reps, [(str(b), timed(store, b)) for b in BATCHES])
    finally:
        await ctx.drop(prefix)
    return [_table(count, results)]


def _table(count: int, results: dict[str, Stats]) -> Table:
    table = Table(
        f"6. Recovery sweep of {count:,} executions whose worker died",
        ["recover_executions limit", "whole sweep (s)", "executions/s", "sweeps"],
    )
    for batch in BATCHES:
        stats = results[str(batch)]
        table.add(batch, stats.cell(), fmt(count / stats.median), -(-count // batch))
    table.notes += [
        "Each sweep is one transaction: expire claims, then requeue (with backoff) or fail the "
        "dead runs and write a recovery record for each.",
        "No target in issue 7; reported for regressions.",
    ]
    return table


WORKLOAD = Workload("recovery", "Recovery sweep", frozenset({"postgres"}), run)
