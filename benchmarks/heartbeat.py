"""Workload 8: what the worker registry adds to a worker's heartbeat.

A worker holding N leases renews them every heartbeat with one `extend_claims`; with the
registry, `keep_worker_alive` renews the leases and pushes the worker's presence on in the same
statement (PostgreSQL) or transaction (SQLite). With no lease held the registry costs a write
the worker did not make before, once per heartbeat interval (5 s by default). Timed: one call,
the median of many, interleaved repetition by repetition. On PostgreSQL it also counts how many
of the heartbeat's row updates were HOT (the lease lives on the execution row, and a heartbeat
writes no indexed column), from each transaction's own counters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from benchmarks._common import Context, Stats, Table, Workload, fmt, median_call, repeat
from benchmarks._postgres import PostgresBench
from flowexec.model import new_execution
from flowexec.model.workers import WorkerRegistration
from flowexec.store.postgres.queries import EXTEND
from flowexec.store.protocol import ExecutionStore
from flowexec.version import __version__

WORKER = "bench-heartbeat-worker"
LEASE_MS = 60_000
HELD = (0, 10, 100)
HOT_BEATS = 50

_XACT_UPDATES = """
    SELECT pg_stat_get_xact_tuples_updated(%(t)s::regclass),
           pg_stat_get_xact_tuples_hot_updated(%(t)s::regclass)
"""


async def hot_updates(
    pg: PostgresBench, prefix: str, pairs: list[tuple[str, int]]
) -> tuple[int, int]:
    """(row updates, HOT ones) over `HOT_BEATS` heartbeats, each its own transaction: the
    backend's not yet flushed counters, read before and after the heartbeat inside it."""
    updated = hot = 0
    params = {"worker_id": WORKER, "timeout_ms": LEASE_MS,
              "ids": [p[0] for p in pairs], "epochs": [p[1] for p in pairs]}
    counters = {"t": f"{prefix}executions"}
    async with await pg.connect() as conn:
        for _ in range(HOT_BEATS):
            async with conn.transaction():
                before = await (await conn.execute(_XACT_UPDATES.encode(), counters)).fetchone()
                await conn.execute(EXTEND.replace("{p}", prefix).encode(), params)
                after = await (await conn.execute(_XACT_UPDATES.encode(), counters)).fetchone()
                assert before is not None and after is not None
                updated += after[0] - before[0]
                hot += after[1] - before[1]
    return updated, hot


async def held_leases(store: ExecutionStore, count: int) -> list[tuple[str, int]]:
    """`count` executions claimed by the worker: the (id, epoch) pairs a heartbeat renews."""
    executions = [new_execution("bench.heartbeat", "bench") for _ in range(count)]
    if executions:
        await store.create_many(executions)
    claims = await store.claim_next(WORKER, LEASE_MS, limit=count) if count else []
    return [(claim.execution_id, claim.epoch) for claim in claims]


async def run(ctx: Context) -> list[Table]:
    results: dict[int, dict[str, Stats]] = {}
    hot: tuple[int, int] | None = None
    for count in HELD:
        prefix = ctx.prefix(f"heartbeat{count}")
        try:
            async with ctx.store(prefix) as store:
                await store.register_worker(
                    WorkerRegistration(WORKER, "bench", 1, ("bench.heartbeat",), 100, __version__),
                    ttl_ms=LEASE_MS,
                )
                pairs = await held_leases(store, count)
                results[count] = await repeat(
                    ctx.reps,
                    [("extend", _extending(store, pairs)), ("keep_alive", _keeping(store, pairs))],
                )
                if ctx.backend == "postgres" and count == max(HELD):
                    hot = await hot_updates(ctx.require_postgres(), prefix, pairs)
        finally:
            await ctx.drop(prefix)
    return [_table(ctx.backend, results, hot)]


def _extending(
    store: ExecutionStore, pairs: list[tuple[str, int]]
) -> Callable[[int], Awaitable[float]]:
    return lambda _rep: median_call(lambda: store.extend_claims(WORKER, pairs, LEASE_MS))


def _keeping(
    store: ExecutionStore, pairs: list[tuple[str, int]]
) -> Callable[[int], Awaitable[float]]:
    return lambda _rep: median_call(
        lambda: store.keep_worker_alive(WORKER, pairs, lease_ms=LEASE_MS, ttl_ms=LEASE_MS)
    )


def _table(
    backend: str, results: dict[int, dict[str, Stats]], hot: tuple[int, int] | None
) -> Table:
    table = Table(
        f"8. Heartbeat with the worker registry ({backend})",
        ["leases held", "extend_claims (ms)", "keep_worker_alive (ms)", "difference (ms)"],
    )
    for count in HELD:
        extend, keep = results[count]["extend"], results[count]["keep_alive"]
        table.add(
            count,
            f"{fmt(extend.median * 1000)} ({fmt(extend.low * 1000)}-{fmt(extend.high * 1000)})",
            f"{fmt(keep.median * 1000)} ({fmt(keep.low * 1000)}-{fmt(keep.high * 1000)})",
            fmt((keep.median - extend.median) * 1000),
        )
    table.notes += [
        "With no lease held, extend_claims makes no round trip at all; keep_worker_alive is "
        "then the registry's whole cost: one small write per worker per heartbeat interval.",
        "No target; reported so that the registry's cost on the heartbeat stays visible.",
    ]
    if hot is not None:
        updated, in_place = hot
        table.notes.append(
            f"HOT: {in_place:,} of the {updated:,} row updates of {HOT_BEATS} more heartbeats "
            f"over {max(HELD)} leases ({fmt(100 * in_place / max(updated, 1))}%) were HOT "
            "(pg_stat_get_xact_tuples_hot_updated, per transaction). A HOT update needs room "
            "in the row's page, which pruning makes once no snapshot needs the old versions."
        )
    return table


WORKLOAD = Workload("heartbeat", "Heartbeat with the registry", frozenset({"postgres", "sqlite"}),
                    run)
