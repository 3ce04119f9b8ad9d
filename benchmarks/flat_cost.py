"""Workload 5: flat cost: claim_next with 10,000 vs 1,000,000 rows of history in the table.

Two installations (table prefixes) in the same database, each with a queue of runnable
executions; one also holds 10,000 finished executions, the other 1,000,000, each finished one with
its released claim row, vacuumed as old history would be. A worker claims one (or ten) at a time
and marks what it claimed `running` (untimed), as the runtime does, so the queue moves on. The
statement runs prepared, as psycopg does after a few executions, so generic plans are covered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from benchmarks._common import (
    Context,
    Stats,
    Table,
    Target,
    Workload,
    fenced,
    fmt,
    ratio,
    repeat,
)
from benchmarks._load import Load, load
from flowexec.model import ExecutionStatus
from flowexec.store.protocol import ExecutionStore

WORKER = "bench-flat-worker"
TIMEOUT_MS = 60_000
LIMITS = (1, 10)
WARMUP_CALLS = 20
TARGET_RATIO = 1.5


async def claim_latency(store: ExecutionStore, calls: int, limit: int) -> float:
    """Median milliseconds of `calls` claim_next calls; claimed executions go to running."""
    samples: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        claims = await store.claim_next(WORKER, TIMEOUT_MS, limit=limit)
        samples.append(time.perf_counter() - started)
        if len(claims) != limit:
            raise RuntimeError(f"the queue ran dry: claimed {len(claims)} of {limit}")
        for claim in claims:
            await store.update_execution_status(fenced(claim, ExecutionStatus.RUNNING))
    samples.sort()
    return samples[len(samples) // 2] * 1000


def timed(store: ExecutionStore, calls: int, limit: int) -> Callable[[int], Awaitable[float]]:
    return lambda _rep: claim_latency(store, calls, limit)


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    histories = {"small": ctx.scale(10_000, 1_000), "large": ctx.scale(1_000_000, 20_000)}
    calls = ctx.scale(300, 30)
    queue = WARMUP_CALLS * sum(LIMITS) + ctx.reps * calls * sum(LIMITS) + 100
    prefixes = {size: ctx.prefix(f"flat_{size}") for size in histories}
    results: dict[int, dict[str, Stats]] = {}
    try:
        async with (
            ctx.store(prefixes["small"], pool_min_size=1, pool_max_size=1) as small,
            ctx.store(prefixes["large"], pool_min_size=1, pool_max_size=1) as large,
        ):
            stores = {"small": small, "large": large}
            for size, history in histories.items():
                ctx.log(f"loading {history:,} finished executions and a queue of {queue:,}")
                await load(
                    pg, prefixes[size],
                    Load("H", history, status="completed", claim="released"),
                    Load("Q", queue, status="created"),
                    vacuum=True,
                )
            for limit in LIMITS:
                for store in stores.values():
                    await claim_latency(store, WARMUP_CALLS, limit)
                results[limit] = await repeat(ctx.reps, [
                    (size, timed(store, calls, limit)) for size, store in stores.items()
                ])
    finally:
        for prefix in prefixes.values():
            await ctx.drop(prefix)
    return [_table(histories, calls, results)]


def _table(histories: dict[str, int], calls: int, results: dict[int, dict[str, Stats]]
           ) -> Table:
    small, large = histories["small"], histories["large"]
    table = Table(
        f"5. Flat cost: claim_next with {small:,} vs {large:,} rows of history",
        ["claim_next", f"{small:,} finished (ms)", f"{large:,} finished (ms)",
         "large / small"],
    )
    for limit, stats in results.items():
        table.add(f"limit={limit}", stats["small"].cell(), stats["large"].cell(),
                  f"{fmt(ratio(stats['large'], stats['small']))}x")
    for limit, stats in results.items():
        cost = ratio(stats["large"], stats["small"])
        table.targets.append(Target(
            f"limit={limit}: {large:,} within {TARGET_RATIO:g}x of {small:,}",
            f"{fmt(cost)}x", cost <= TARGET_RATIO))
    table.notes.append(
        f"Median of {calls} sequential calls per repetition, one connection, after "
        f"{WARMUP_CALLS} warm-up calls (the statement is prepared by then)."
    )
    return table


WORKLOAD = Workload("flat_cost", "Flat cost", frozenset({"postgres"}), run)
