"""Workload 2: drain 20,000 executions created in bulk to `completed`, end to end.

flowexec side: WORKERS runtime `Worker`s (concurrency BATCH, each on its own store of one
connection) running a no-op flow; the clock runs from starting them to the last `completed`.
For attribution, the same at store level: each worker loops `claim_next(limit=BATCH)`, then per
execution a fenced `update_execution_status(running)`, the no-op flow, and a fenced
`update_execution_status(completed)`.
Baseline: the minimum a raw-SQL pipeline needs over the same number of connections: one
`UPDATE … WHERE id IN (SELECT … LIMIT BATCH FOR UPDATE SKIP LOCKED) RETURNING id` claim and one
completing `UPDATE … WHERE id = ANY(…)` per batch, the same no-op flow per execution.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial

from benchmarks._common import (
    Context,
    Stats,
    Table,
    Target,
    Workload,
    fenced,
    fmt,
    noop_flow,
    ratio,
    repeat,
)
from benchmarks._load import Load, count_by_status, load, truncate, wait_for_count
from benchmarks._postgres import PostgresBench
from benchmarks._runtime import FLOW, NoopFlow, workers
from flowexec.model import ExecutionStatus
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
        ORDER BY available_at, id
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
    while claims := await store.claim_next(worker, TIMEOUT_MS, limit=BATCH):
        for claim in claims:
            await store.update_execution_status(fenced(claim, ExecutionStatus.RUNNING))
            await noop_flow()
            await store.update_execution_status(fenced(claim, ExecutionStatus.COMPLETED))
            done += 1
    return done


async def raw_worker(pg: PostgresBench, prefix: str, worker: str) -> int:
    claim = _RAW_CLAIM.replace("{p}", prefix).encode()
    complete = _RAW_COMPLETE.replace("{p}", prefix).encode()
    done = 0
    async with await pg.connect() as conn:
        while True:
            cur = await conn.execute(claim, {"worker": worker, "limit": BATCH})
            ids = [row[0] for row in await cur.fetchall()]
            if not ids:
                return done
            for _ in ids:
                await noop_flow()
            await conn.execute(complete, {"ids": ids})
            done += len(ids)


Drainer = Callable[[str], Awaitable[int]]


async def drain(pg: PostgresBench, prefix: str, count: int,
                drainers: list[Drainer]) -> float:
    """Load `count` runnable executions, drain them with the workers; executions per second."""
    await truncate(pg, prefix)
    await load(pg, prefix, Load("D", count, status="created"))
    started = time.perf_counter()
    done = await asyncio.gather(*(d(f"bench-worker-{n}") for n, d in enumerate(drainers)))
    elapsed = time.perf_counter() - started
    statuses = await count_by_status(pg, prefix)
    if sum(done) != count or statuses != {"completed": count}:
        raise RuntimeError(f"drain finished {sum(done)} of {count}: {statuses}")
    return count / elapsed


async def runtime_drain(pg: PostgresBench, prefix: str, count: int, flow: NoopFlow) -> float:
    """The real Workers drain `count` loaded executions; executions per second."""
    await truncate(pg, prefix)
    await load(pg, prefix, Load("D", count, status="created", flow_id=FLOW))
    flow.expect_runs(count)
    started = time.perf_counter()
    async with workers(flow, pg.url, prefix, WORKERS, concurrency=BATCH,
                       claim_timeout_ms=TIMEOUT_MS, pool_min_size=1, pool_max_size=1):
        await flow.all_ran(timeout_s=max(60.0, count / 100))
        await wait_for_count(pg, prefix, "completed", count)
        elapsed = time.perf_counter() - started
    statuses = await count_by_status(pg, prefix)
    if flow.runs != count or statuses != {"completed": count}:
        raise RuntimeError(f"the workers ran {flow.runs} of {count}: {statuses}")
    return count / elapsed


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    prefix = ctx.prefix("drain")
    count = ctx.scale(20_000, 1_000)
    try:
        async with AsyncExitStack() as stack:
            stores = [
                await stack.enter_async_context(ctx.store(prefix, pool_min_size=1, pool_max_size=1))
                for _ in range(WORKERS)
            ]
            store_drainers: list[Drainer] = [partial(store_worker, s) for s in stores]
            raw_drainers: list[Drainer] = [partial(raw_worker, pg, prefix)] * WORKERS
            flow = NoopFlow()
            results = await repeat(ctx.reps, [
                ("runtime", lambda _r: runtime_drain(pg, prefix, count, flow)),
                ("flowexec", lambda _r: drain(pg, prefix, count, store_drainers)),
                ("raw", lambda _r: drain(pg, prefix, count, raw_drainers)),
            ])
    finally:
        await ctx.drop(prefix)
    return [_table(count, results)]


def _table(count: int, results: dict[str, Stats]) -> Table:
    table = Table(
        f"2. Drain {count:,} executions ({WORKERS} workers, {WORKERS} connections, "
        f"batch {BATCH})",
        ["pipeline", "executions/s", "share of raw"],
    )
    share = ratio(results["runtime"], results["raw"])
    table.add(f"flowexec Worker x{WORKERS} (concurrency {BATCH}, no-op flow)",
              results["runtime"].cell(), f"{share:.0%}")
    table.add("flowexec store loop (claim_next + fenced running + fenced completed)",
              results["flowexec"].cell(), f"{ratio(results['flowexec'], results['raw']):.0%}")
    table.add("raw SQL (SKIP LOCKED claim + completing UPDATE per batch)",
              results["raw"].cell(), "100%")
    table.targets.append(Target(f"≥ {TARGET_SHARE:.0%} of raw", f"{share:.0%}",
                                share >= TARGET_SHARE))
    table.notes += [
        "End to end: from the first claim to the last completion, bulk creation excluded "
        "(executions are loaded with one INSERT … SELECT before each repetition).",
        "Worker start-up (opening its store) is inside the Worker's time; it is tens of ms.",
        f"Statements per execution: Worker {1 / BATCH + 3:.1f} (set running, get, complete: "
        f"2 commits), store loop {1 / BATCH + 2:.1f} (2 commits), raw {2 / BATCH:.1f}.",
        f"Per-execution cost: Worker {fmt(1000 / results['runtime'].median)} ms, store loop "
        f"{fmt(1000 / results['flowexec'].median)} ms, raw {fmt(1000 / results['raw'].median)} ms "
        f"(per worker: x{WORKERS}).",
    ]
    return table


WORKLOAD = Workload("drain", "Drain", frozenset({"postgres"}), run)
