"""Workload 8: what a `/metrics` scrape costs, with 10,000 vs 1,000,000 rows of history.

Two installations, each with the same unfinished work spread over FLOWS flows (queued
executions, and running ones whose workers hold live leases) behind `small` or `large`
finished history, vacuumed as old history would be. Timed: `FlowexecMetrics.render()` when its
queue cache is stale (one `get_queue_stats` statement, then the exposition) and when it is
fresh (the exposition alone, what every scrape within `queue_cache_s` costs).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from benchmarks._common import Context, Stats, Table, Workload, fmt, ratio, repeat
from benchmarks._load import LIVE_LEASE_S, Load, load
from flowexec.metrics import FlowexecMetrics
from flowexec.store.protocol import ExecutionStore

FLOWS = 10
WARMUP = 5


async def render_ms(metrics: FlowexecMetrics, calls: int, *, stale: bool) -> float:
    """Median milliseconds of `calls` renders, each with the queue cache stale or fresh."""
    assert metrics.queue is not None
    await metrics.render()
    samples: list[float] = []
    for _ in range(calls):
        if stale:
            metrics.queue.expire()
        started = time.perf_counter()
        await metrics.render()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2] * 1000


def timed(metrics: FlowexecMetrics, calls: int, stale: bool) -> Callable[[int], Awaitable[float]]:
    return lambda _rep: render_ms(metrics, calls, stale=stale)


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    history = {"small": ctx.scale(10_000, 1_000), "large": ctx.scale(1_000_000, 20_000)}
    queued, running = ctx.scale(5_000, 500), ctx.scale(2_000, 200)
    calls = ctx.scale(50, 10)
    prefixes = {name: ctx.prefix(f"scrape_{name}") for name in history}
    results: dict[bool, dict[str, Stats]] = {}
    try:
        async with AsyncExitStack() as stack:
            gauges: dict[str, FlowexecMetrics] = {}
            for name, finished in history.items():
                store: ExecutionStore = await stack.enter_async_context(
                    ctx.store(prefixes[name], pool_min_size=1, pool_max_size=1))
                ctx.log(f"{name}: loading {finished:,} finished, {queued:,} queued and "
                        f"{running:,} running over {FLOWS} flows")
                work = [
                    spec
                    for n in range(FLOWS)
                    for spec in (
                        Load(f"Q{n}-", queued // FLOWS, status="created", flow_id=f"flow-{n}"),
                        Load(f"R{n}-", running // FLOWS, status="running", claim="active",
                             lease_s=LIVE_LEASE_S, flow_id=f"flow-{n}"),
                    )
                ]
                await load(pg, prefixes[name],
                           Load("H", finished, status="completed", claim="released"), *work,
                           vacuum=True)
                gauges[name] = FlowexecMetrics(store)
                await render_ms(gauges[name], WARMUP, stale=True)
            for stale in (True, False):
                results[stale] = await repeat(ctx.reps, [
                    (name, timed(metrics, calls, stale)) for name, metrics in gauges.items()
                ])
    finally:
        for prefix in prefixes.values():
            await ctx.drop(prefix)
    return [_table(history, queued, running, calls, results)]


def _table(history: dict[str, int], queued: int, running: int, calls: int,
           results: dict[bool, dict[str, Stats]]) -> Table:
    small, large = history["small"], history["large"]
    table = Table(
        f"8. Metrics scrape: {queued:,} queued and {running:,} running executions over "
        f"{FLOWS} flows, behind {small:,} vs {large:,} finished",
        ["scrape", f"{small:,} finished (ms)", f"{large:,} finished (ms)", "large / small"],
    )
    for stale, label in ((True, "queue cache stale: get_queue_stats + exposition"),
                         (False, "queue cache fresh: exposition only")):
        r = results[stale]
        table.add(label, r["small"].cell(), r["large"].cell(),
                  f"{fmt(ratio(r['large'], r['small']))}x")
    table.notes += [
        f"Median of {calls} sequential renders per repetition, one connection, after "
        f"{WARMUP} warm-up renders.",
        "The stale row is what one scrape per `queue_cache_s` (5 s) costs; every other scrape "
        "costs the fresh row. The statement reads the runnable and recoverable partial "
        "indexes, so the history behind them should not change it.",
    ]
    return table


WORKLOAD = Workload("metrics_scrape", "Metrics scrape", frozenset({"postgres"}), run)
