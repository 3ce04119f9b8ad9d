"""Bulk loads into flowexec's PostgreSQL tables: one `INSERT … SELECT generate_series` each.

Rows are generated inside the server, so a million executions load in seconds, with every
index and foreign key in place (the tables are the ones `migrate()` made).

Tree shape (depth at most 5): nodes 1..5 form a chain under the
root (node k at depth k), and every further node k hangs under chain node k % 5. A tree of
one node is a plain execution. Roots are one second apart, the newest an hour old; a node is
k milliseconds younger than its root.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from psycopg import sql

from benchmarks._postgres import PostgresBench

OTHER_WORKER = "bench-other-worker"
"""Holds the claims of loaded `running` executions (a dead worker, or a live one elsewhere)."""
LIVE_LEASE_S = 30 * 24 * 3600

_EXECUTIONS = """
INSERT INTO {p}executions (
    id, flow_id, owner_id, root_execution_id, parent_execution_id, status,
    created_at, updated_at, started_at, completed_at, execution_depth,
    available_at, processing_worker_id, processing_started_at, claim_epoch)
SELECT
    CASE WHEN n.k = 0 THEN r.id ELSE r.id || '.' || lpad(n.k::text, 4, '0') END,
    %(flow_id)s, 'bench-owner', r.id,
    CASE WHEN n.k = 0 THEN NULL
         WHEN n.parent_k = 0 THEN r.id
         ELSE r.id || '.' || lpad(n.parent_k::text, 4, '0') END,
    %(status)s,
    r.created + n.k * interval '1 millisecond',
    r.created + n.k * interval '1 millisecond',
    CASE WHEN %(status)s IN ('running', 'completed', 'failed') THEN r.created END,
    CASE WHEN %(status)s IN ('completed', 'failed', 'stopped')
         THEN r.created + interval '1 second' END,
    n.depth,
    r.created + n.k * interval '1 millisecond',
    CASE WHEN %(status)s = 'running' THEN %(worker)s END,
    CASE WHEN %(status)s = 'running' THEN r.created END,
    %(epoch)s
FROM (
    SELECT i, %(id_prefix)s || lpad(i::text, 8, '0') AS id,
           now() - interval '1 hour' - (%(roots)s - i) * interval '1 second' AS created
    FROM generate_series(0, %(roots)s - 1) AS g (i)
) AS r
CROSS JOIN LATERAL (
    SELECT k,
           CASE WHEN k <= 5 THEN k - 1 ELSE k %% 5 END AS parent_k,
           CASE WHEN k <= 5 THEN k ELSE k %% 5 + 1 END AS depth
    FROM generate_series(0, %(size)s + r.i %% %(size_cycle)s - 1) AS s (k)
) AS n
"""

_CLAIMS = """
UPDATE {p}executions SET lease_worker_id = %(worker)s, lease_claimed_at = created_at,
    lease_expires_at = created_at + make_interval(secs => %(lease_s)s),
    lease_heartbeat_at = created_at, lease_status = %(claim)s, claim_epoch = 1
WHERE starts_with(id, %(id_prefix)s)
"""


@dataclass(frozen=True, slots=True)
class Load:
    """`roots` trees (of one node: plain executions) under ids `<id_prefix><8 digits>`."""

    id_prefix: str
    roots: int
    status: str = "completed"
    size: int = 1
    size_cycle: int = 1
    """Root i's tree has `size + i % size_cycle` nodes."""
    flow_id: str = "bench-flow"
    claim: str | None = None
    """A lease on every execution: `released` (finished history) or `active`."""
    lease_s: int = 30
    """How long after creation an `active` claim expires (they are created an hour ago or more:
    30 s means dead workers, 30 days live ones)."""


async def load(pg: PostgresBench, prefix: str, *loads: Load, vacuum: bool = False) -> int:
    """Insert the loads, then ANALYZE (or VACUUM ANALYZE, as old history would be)."""
    total = 0
    async with await pg.connect() as conn:
        for spec in loads:
            cur = await conn.execute(
                _EXECUTIONS.replace("{p}", prefix).encode(),
                {
                    "id_prefix": spec.id_prefix,
                    "roots": spec.roots,
                    "size": spec.size,
                    "size_cycle": spec.size_cycle,
                    "status": spec.status,
                    "flow_id": spec.flow_id,
                    "worker": OTHER_WORKER,
                    "epoch": 0 if spec.claim is None else 1,
                },
            )
            total += cur.rowcount
            if spec.claim is not None:
                await conn.execute(
                    _CLAIMS.replace("{p}", prefix).encode(),
                    {"id_prefix": spec.id_prefix, "worker": OTHER_WORKER, "claim": spec.claim,
                     "lease_s": spec.lease_s},
                )
        verb = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
        await conn.execute(sql.SQL(verb + " {}").format(sql.Identifier(prefix + "executions")))
    return total


async def spread_priorities(pg: PostgresBench, prefix: str, id_prefix: str, levels: int) -> None:
    """Give a load's executions priorities -1, 0, 1, ... in turn (by id), as a queue in use has,
    then VACUUM ANALYZE the table again."""
    statement = (
        "UPDATE {p}executions SET priority = right(id, 8)::int %% %(levels)s - %(levels)s / 2"
        " WHERE starts_with(id, %(id_prefix)s)"
    )
    async with await pg.connect() as conn:
        await conn.execute(
            statement.replace("{p}", prefix).encode(), {"levels": levels, "id_prefix": id_prefix}
        )
        table = sql.Identifier(prefix + "executions")
        await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table))


async def truncate(pg: PostgresBench, prefix: str) -> None:
    await pg.execute(
        "TRUNCATE {p}executions, {p}execution_recovery, "
        "{p}execution_events CASCADE".replace("{p}", prefix)  # and what references them
    )


async def count_by_status(pg: PostgresBench, prefix: str) -> dict[str, int]:
    async with await pg.connect() as conn:
        statement = "SELECT status, count(*) FROM {p}executions GROUP BY status"
        cur = await conn.execute(statement.replace("{p}", prefix).encode())
        return {str(status): int(n) for status, n in await cur.fetchall()}


async def wait_for_count(
    pg: PostgresBench, prefix: str, status: str, count: int, timeout_s: float = 60.0
) -> None:
    """Poll (every few ms) until `count` executions have `status`."""
    statement = "SELECT count(*) FROM {p}executions WHERE status = %(status)s"
    deadline = time.perf_counter() + timeout_s
    async with await pg.connect() as conn:
        while True:
            cur = await conn.execute(statement.replace("{p}", prefix).encode(), {"status": status})
            row = await cur.fetchone()
            if row is not None and int(row[0]) >= count:
                return
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{status}: {row} of {count} after {timeout_s} s")
            await asyncio.sleep(0.005)
