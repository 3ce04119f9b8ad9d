"""Workload 1: claim one execution (claim_execution + release_execution) at 1, 4 and 16 connections.

The baseline is the reference's algorithm reproduced in plain SQL on the same executions, with
a claims table of its own (flowexec keeps the lease on the execution row since its migration
`lease_on_execution`): one transaction that locks the execution row, locks the claim row,
inserts or updates the claim and marks the execution (BEGIN + 4 statements + COMMIT), and a
release transaction of two updates.
Its one defect that would stop the loop (a released claim blocked every later claim,
docs/architecture.md §9) is fixed, so both sides do the same work per cycle. Each connection
cycles over its own executions, so the figure is throughput, not contention.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from benchmarks._common import (
    Context,
    Stats,
    Table,
    Target,
    Workload,
    fmt,
    ratio,
    repeat,
)
from benchmarks._load import Load, load
from benchmarks._postgres import AsyncConn, PostgresBench
from flowexec.store.protocol import ExecutionStore

CONCURRENCY = (1, 4, 16)
IDS_PER_CONNECTION = 20
TIMEOUT_MS = 30_000
TARGET_RATIO = 3.0

# The reference's claims table, as flowexec's was before migration `lease_on_execution`.
_CLAIMS_TABLE = """
    CREATE TABLE {p}execution_claims (
        execution_id text PRIMARY KEY REFERENCES {p}executions (id) ON DELETE CASCADE,
        worker_id text NOT NULL, claimed_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL,
        status text NOT NULL, epoch bigint NOT NULL);
    CREATE INDEX {p}execution_claims_status_expires ON {p}execution_claims (status, expires_at)
"""
_LOCK_EXECUTION = "SELECT id, status FROM {p}executions WHERE id = %(id)s FOR UPDATE"
_LOCK_CLAIM = """
    SELECT execution_id, status, expires_at FROM {p}execution_claims
    WHERE execution_id = %(id)s FOR UPDATE
"""
_INSERT_CLAIM = """
    INSERT INTO {p}execution_claims (
        execution_id, worker_id, claimed_at, expires_at, heartbeat_at, status, epoch)
    VALUES (%(id)s, %(worker)s, %(now)s, %(expires)s, %(now)s, 'active', 1)
"""
_UPDATE_CLAIM = """
    UPDATE {p}execution_claims SET worker_id = %(worker)s, claimed_at = %(now)s,
        expires_at = %(expires)s, heartbeat_at = %(now)s, status = 'active', epoch = epoch + 1
    WHERE execution_id = %(id)s
"""
_MARK = """
    UPDATE {p}executions SET processing_worker_id = %(worker)s, processing_started_at = %(now)s,
        updated_at = %(now)s
    WHERE id = %(id)s
"""
_RELEASE_CLAIM = """
    UPDATE {p}execution_claims SET status = 'released'
    WHERE execution_id = %(id)s AND worker_id = %(worker)s
"""
_CLEAR = """
    UPDATE {p}executions SET processing_worker_id = NULL, updated_at = %(now)s
    WHERE id = %(id)s AND processing_worker_id = %(worker)s
"""

Cycle = Callable[[int, str], Awaitable[None]]
"""One claim + release of execution id (by index) for a worker."""


class Reference:
    """The reference's claim and release, statement by statement, on dedicated connections."""

    def __init__(self, conns: Sequence[AsyncConn], prefix: str, ids: Sequence[str]) -> None:
        self.conns = conns
        self.ids = ids
        self.sql = {
            name: template.replace("{p}", prefix).encode()
            for name, template in {
                "lock_execution": _LOCK_EXECUTION, "lock_claim": _LOCK_CLAIM,
                "insert_claim": _INSERT_CLAIM, "update_claim": _UPDATE_CLAIM, "mark": _MARK,
                "release_claim": _RELEASE_CLAIM, "clear": _CLEAR,
            }.items()
        }

    async def claim(self, conn: AsyncConn, execution_id: str, worker: str) -> bool:
        now = datetime.now(UTC)  # the reference used the worker's clock
        params = {"id": execution_id, "worker": worker, "now": now,
                  "expires": now + timedelta(milliseconds=TIMEOUT_MS)}
        async with conn.transaction():
            cur = await conn.execute(self.sql["lock_execution"], params)
            row = await cur.fetchone()
            if row is None or row[1] in ("completed", "failed"):
                return False
            cur = await conn.execute(self.sql["lock_claim"], params)
            claim = await cur.fetchone()
            if claim is None:
                await conn.execute(self.sql["insert_claim"], params)
            elif claim[1] != "active" or claim[2] < now:
                await conn.execute(self.sql["update_claim"], params)
            else:
                return False
            await conn.execute(self.sql["mark"], params)
        return True

    async def release(self, conn: AsyncConn, execution_id: str, worker: str) -> None:
        params = {"id": execution_id, "worker": worker, "now": datetime.now(UTC)}
        async with conn.transaction():
            await conn.execute(self.sql["release_claim"], params)
            await conn.execute(self.sql["clear"], params)

    def cycle_for(self, task: int) -> Cycle:
        conn = self.conns[task]

        async def cycle(index: int, worker: str) -> None:
            execution_id = self.ids[index]
            if not await self.claim(conn, execution_id, worker):
                raise RuntimeError(f"reference claim of {execution_id} refused")
            await self.release(conn, execution_id, worker)

        return cycle


def flowexec_cycle(store: ExecutionStore, ids: Sequence[str]) -> Cycle:
    async def cycle(index: int, worker: str) -> None:
        claim = await store.claim_execution(ids[index], worker, TIMEOUT_MS)
        if claim is None:
            raise RuntimeError(f"claim_execution({ids[index]}) refused")
        await store.release_execution(ids[index], worker, epoch=claim.epoch)

    return cycle


async def run_for(seconds: float, cycles: Sequence[Cycle]) -> float:
    """Every task loops over its own executions until time is up; claim+release per second."""
    deadline = time.perf_counter() + seconds

    async def task(number: int, cycle: Cycle) -> int:
        own = range(number * IDS_PER_CONNECTION, (number + 1) * IDS_PER_CONNECTION)
        done = 0
        for index in itertools.cycle(own):
            if time.perf_counter() >= deadline:
                return done
            await cycle(index, f"bench-worker-{number}")
            done += 1
        return done

    started = time.perf_counter()
    counts = await asyncio.gather(*(task(n, c) for n, c in enumerate(cycles)))
    return sum(counts) / (time.perf_counter() - started)


async def cpu_per_cycle(pg: PostgresBench, cycle: Cycle, cycles: int) -> tuple[float, float]:
    """(server, client) CPU milliseconds per cycle at one connection."""
    async with pg.cpu() as use:
        for n in range(cycles):
            await cycle(n % IDS_PER_CONNECTION, "bench-worker-0")
    return use.per(cycles)


CpuCost = dict[str, tuple[float, float]]
"""Per side: (server, client) CPU ms per cycle at one connection."""


async def _measure(
    ctx: Context, pg: PostgresBench, store: ExecutionStore, prefix: str
) -> tuple[dict[int, dict[str, Stats]], CpuCost]:
    ids = [f"C{i:08d}" for i in range(max(CONCURRENCY) * IDS_PER_CONNECTION)]
    conns = [await pg.connect() for _ in range(max(CONCURRENCY))]
    try:
        reference = Reference(conns, prefix, ids)
        window = ctx.seconds(3.0, 0.25)

        def series(level: int) -> list[tuple[str, Callable[[int], Awaitable[float]]]]:
            fx = [flowexec_cycle(store, ids)] * level
            ref = [reference.cycle_for(n) for n in range(level)]
            return [
                ("flowexec", lambda _rep: run_for(window, fx)),
                ("reference", lambda _rep: run_for(window, ref)),
            ]

        for _, warm in series(max(CONCURRENCY)):  # prepare statements on every connection
            await warm(0)
        cycles = ctx.scale(2_000, 200)
        cpu = {
            "flowexec": await cpu_per_cycle(pg, flowexec_cycle(store, ids), cycles),
            "reference": await cpu_per_cycle(pg, reference.cycle_for(0), cycles),
        }
        results = {}
        for level in CONCURRENCY:
            ctx.log(f"{level} connection(s)")
            results[level] = await repeat(ctx.reps, series(level))
        return results, cpu
    finally:
        for conn in conns:
            await conn.close()


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    prefix = ctx.prefix("claim")
    try:
        size = max(CONCURRENCY)
        async with ctx.store(prefix, pool_min_size=size, pool_max_size=size) as store:
            await load(pg, prefix, Load("C", size * IDS_PER_CONNECTION, status="created"))
            await pg.execute(_CLAIMS_TABLE.replace("{p}", prefix))
            results, cpu = await _measure(ctx, pg, store, prefix)
    finally:
        await ctx.drop(prefix)

    table = Table(
        "1. Claim one execution (claim_execution + release_execution)",
        ["connections", "flowexec (cycles/s)", "reference algorithm (cycles/s)", "ratio"],
    )
    for level, stats in results.items():
        table.add(level, stats["flowexec"].cell(), stats["reference"].cell(),
                  f"{fmt(ratio(stats['flowexec'], stats['reference']))}x")
    fx_cpu, ref_cpu = (sum(cpu[side]) for side in ("flowexec", "reference"))
    table.add("CPU per cycle, server + client (ms)",
              f"{fmt(cpu['flowexec'][0])} + {fmt(cpu['flowexec'][1])}",
              f"{fmt(cpu['reference'][0])} + {fmt(cpu['reference'][1])}",
              f"{fmt(ref_cpu / fx_cpu)}x less")
    top = results[max(CONCURRENCY)]
    measured = ratio(top["flowexec"], top["reference"])
    table.targets.append(Target(
        f"≥ {TARGET_RATIO:g}x the reference at {max(CONCURRENCY)} connections",
        f"{fmt(measured)}x", measured >= TARGET_RATIO,
    ))
    table.notes += [
        "A cycle is one claim and one release of an execution owned by that connection; "
        f"{IDS_PER_CONNECTION} executions per connection, {ctx.seconds(3.0, 0.25):g} s windows.",
        "flowexec: 2 statements (2 round trips, 2 commits) through the store's pool of "
        f"{max(CONCURRENCY)}. Reference: BEGIN, lock execution, lock claim, insert/update claim, "
        "update execution, COMMIT; then BEGIN, 2 updates, COMMIT (10 round trips, 2 commits), "
        "each on its own dedicated connection.",
        "CPU per cycle: one connection, one pass; server = every backend of the bench database, "
        "client = this Python process. Client and server share the machine's cores, so once "
        "they are saturated the throughput ratio cannot exceed the CPU ratio.",
    ]
    return [table]


WORKLOAD = Workload("claim_one", "Claim one execution", frozenset({"postgres"}), run)
