"""Workload 5: flat cost: claiming with 10,000 vs 1,000,000 rows of history in the table.

Three installations (table prefixes) in the same database, each with a queue of runnable
executions: `small` holds 10,000 finished executions, `large` 1,000,000 (each finished one with
its released lease, vacuumed as old history would be), and `busy` the large history plus
5,000 `running` executions whose workers hold live leases (every running execution has one). A
worker claims one (or ten) at a time and finishes what it claimed (untimed), as the runtime
does, so the queue moves on and live claims do not pile up. Repetitions interleave the three.
The queue holds three priorities (-1, 0, 1) in turn, so the runnable index's order is in use.
The statement runs prepared, as psycopg does after a few executions, so generic plans count.
Besides `claim_next` (the issue's target), the same for the `Worker`'s own call,
`claim_and_start`, where each timed call also completes the batch the previous one started.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

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
from benchmarks._load import LIVE_LEASE_S, Load, load, spread_priorities
from flowexec.model import Completion, ExecutionStatus
from flowexec.store.protocol import ExecutionStore

WORKER = "bench-flat-worker"
TIMEOUT_MS = 60_000
CALLS = (("claim_next", 1), ("claim_next", 10), ("claim_and_start", 10))
WARMUP_CALLS = 20
TARGET_RATIO = 1.5
PRIORITY_LEVELS = 3


async def claim_latency(store: ExecutionStore, method: str, calls: int, limit: int) -> float:
    """Median milliseconds of `calls` claiming calls; what they claim is run and completed."""
    if method == "claim_and_start":
        return await start_latency(store, calls, limit)
    samples: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        claims = await store.claim_next(WORKER, TIMEOUT_MS, limit=limit)
        samples.append(time.perf_counter() - started)
        if len(claims) != limit:
            raise RuntimeError(f"the queue ran dry: claimed {len(claims)} of {limit}")
        for claim in claims:
            await store.update_execution_status(fenced(claim, ExecutionStatus.RUNNING))
            await store.update_execution_status(fenced(claim, ExecutionStatus.COMPLETED))
    samples.sort()
    return samples[len(samples) // 2] * 1000


async def start_latency(store: ExecutionStore, calls: int, limit: int) -> float:
    """As the Worker calls it: each call completes the previous batch and starts the next."""
    samples: list[float] = []
    returned: list[Completion] = []
    for _ in range(calls):
        started = time.perf_counter()
        batch = await store.claim_and_start(
            WORKER, TIMEOUT_MS, limit=0 if returned else limit, complete=returned
        )
        samples.append(time.perf_counter() - started)
        if len(batch.started) != limit or len(batch.completed) != len(returned):
            raise RuntimeError(f"the queue ran dry: started {len(batch.started)} of {limit}")
        returned = [Completion(s.claim.execution_id, s.claim.epoch) for s in batch.started]
    # The last batch, completed untimed and without claiming more (no flow matches []).
    await store.claim_and_start(WORKER, TIMEOUT_MS, limit=0, flow_ids=[], complete=returned)
    samples.sort()
    return samples[len(samples) // 2] * 1000


def timed(
    store: ExecutionStore, method: str, calls: int, limit: int
) -> Callable[[int], Awaitable[float]]:
    return lambda _rep: claim_latency(store, method, calls, limit)


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    small, large = ctx.scale(10_000, 1_000), ctx.scale(1_000_000, 20_000)
    running = ctx.scale(5_000, 500)
    calls = ctx.scale(200, 30)
    claimed = sum(limit for _, limit in CALLS)
    queue = WARMUP_CALLS * claimed + ctx.reps * calls * claimed + 100
    contents = {
        "small": [Load("H", small, status="completed", claim="released")],
        "large": [Load("H", large, status="completed", claim="released")],
        "busy": [Load("H", large, status="completed", claim="released"),
                 Load("R", running, status="running", claim="active", lease_s=LIVE_LEASE_S)],
    }
    prefixes = {name: ctx.prefix(f"flat_{name}") for name in contents}
    results: dict[tuple[str, int], dict[str, Stats]] = {}
    try:
        async with AsyncExitStack() as stack:
            stores: dict[str, ExecutionStore] = {}
            for name, loads in contents.items():
                stores[name] = await stack.enter_async_context(
                    ctx.store(prefixes[name], pool_min_size=1, pool_max_size=1))
                ctx.log(f"{name}: loading {', '.join(f'{x.roots:,} {x.status}' for x in loads)}"
                        f" and a queue of {queue:,}")
                await load(pg, prefixes[name], *loads, Load("Q", queue, status="created"),
                           vacuum=True)
                await spread_priorities(pg, prefixes[name], "Q", PRIORITY_LEVELS)
            for method, limit in CALLS:
                for store in stores.values():
                    await claim_latency(store, method, WARMUP_CALLS, limit)
                results[method, limit] = await repeat(ctx.reps, [
                    (name, timed(store, method, calls, limit)) for name, store in stores.items()
                ])
    finally:
        for prefix in prefixes.values():
            await ctx.drop(prefix)
    return [_table(small, large, running, calls, results)]


def _table(small: int, large: int, running: int, calls: int,
           results: dict[tuple[str, int], dict[str, Stats]]) -> Table:
    table = Table(
        f"5. Flat cost: claiming with {small:,} vs {large:,} rows of history",
        ["call", f"{small:,} finished (ms)", f"{large:,} finished (ms)",
         "large / small", f"{large:,} finished + {running:,} running (ms)", "busy / large"],
    )
    for (method, limit), r in results.items():
        table.add(f"{method} limit={limit}", r["small"].cell(), r["large"].cell(),
                  f"{fmt(ratio(r['large'], r['small']))}x", r["busy"].cell(),
                  f"{fmt(ratio(r['busy'], r['large']))}x")
    for (method, limit), r in results.items():
        cost = ratio(r["large"], r["small"])
        table.targets.append(Target(
            f"{method} limit={limit}: {large:,} rows of history within {TARGET_RATIO:g}x of "
            f"{small:,}",
            f"{fmt(cost)}x", cost <= TARGET_RATIO))
    table.notes += [
        f"Median of {calls} sequential calls per repetition, one connection, after "
        f"{WARMUP_CALLS} warm-up calls (the statement is prepared by then).",
        f"The last two columns are not a target of issue 7: they show whether claiming stays "
        f"flat while {running:,} other executions run (each holding a live claim).",
        "claim_and_start is the Worker's call: each timed call completes the 10 executions the "
        "previous one started (fenced, claims released) and starts 10 more.",
    ]
    return table


WORKLOAD = Workload("flat_cost", "Flat cost", frozenset({"postgres"}), run)
