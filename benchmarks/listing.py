"""Workload 4: listing at scale: root pages with levels/total_nested, and a 1,000-node tree.

1,000,000 executions in 100,000 trees of 1..19 nodes (depth up to 5) in one flow, plus one
1,000-node tree in another flow, bulk-loaded and vacuumed. Pages of 50 roots, newest first:
the first page, and a deep page 90% of the way down (flowexec: keyset cursor on (created_at, id);
the reference: `created_at < t`, its own timestamp pagination).

The reference's query is run as it was written (`execution_depth = 0`, two correlated subqueries
per row), first on flowexec's indexes, which it cannot use for its filter, then with the index the
reference shipped for it, `(flow_id, execution_depth, created_at)`. flowexec is timed through the
store API (with building the model objects) and as its bare SQL statement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import sql

from benchmarks._common import (
    Context,
    Stats,
    Table,
    Target,
    Workload,
    fmt,
    median_call,
    ratio,
    repeat,
)
from benchmarks._load import Load, load
from benchmarks._postgres import AsyncConn, PostgresBench
from flowexec.model import RootExecution
from flowexec.store.postgres import queries as Q
from flowexec.store.protocol import ExecutionStore

FLOW = "bench-flow"
TREE_FLOW = "bench-tree-flow"
PAGE = 50
TREE_NODES = 1_000
DEEP_FRACTION = 0.9
TARGET_SPEEDUP = 20.0
TARGET_DEEP = 2.0

_REFERENCE_PAGE = """
    SELECT e.*,
        (SELECT COALESCE(max(c.execution_depth), 0) FROM {p}executions c
         WHERE c.root_execution_id = e.id) AS levels,
        (SELECT count(*)::int FROM {p}executions c
         WHERE c.root_execution_id = e.id) AS total_nested
    FROM {p}executions e
    WHERE e.flow_id = %(flow_id)s AND e.execution_depth = 0 {after}
    ORDER BY e.created_at DESC
    LIMIT %(limit)s
"""
_REFERENCE_INDEX = "CREATE INDEX {} ON {} (flow_id, execution_depth, created_at)"
_NTH_ROOT = """
    SELECT id FROM {p}executions WHERE flow_id = %(flow_id)s AND parent_execution_id IS NULL
    ORDER BY created_at DESC, id DESC OFFSET %(offset)s LIMIT 1
"""

Call = Callable[[], Awaitable[object]]


class Listing:
    """The calls being timed, each bound to its statement and parameters."""

    def __init__(self, store: ExecutionStore, conn: AsyncConn, prefix: str,
                 cursor: RootExecution) -> None:
        self.store = store
        self.conn = conn
        self.prefix = prefix
        self.cursor = cursor

    def _sql(self, template: str) -> bytes:
        return template.replace("{p}", self.prefix).encode()

    async def _fetch(self, statement: bytes, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        cur = await self.conn.execute(statement, params)
        return await cur.fetchall()

    def flowexec(self, deep: bool) -> Call:
        after = self.cursor if deep else None
        return lambda: self.store.get_root_executions(FLOW, PAGE, after)

    def flowexec_sql(self, deep: bool) -> Call:
        statement = self._sql(Q.ROOT_PAGE[(deep, False, False)])
        params = {
            "flow_id": FLOW, "limit": PAGE, "owner_id": None,
            "after_created": self.cursor.execution.created_at if deep else None,
            "after_id": self.cursor.execution.id if deep else None,
        }
        return lambda: self._fetch(statement, params)

    def reference(self, deep: bool) -> Call:
        after = "AND e.created_at < %(after)s" if deep else ""
        statement = self._sql(_REFERENCE_PAGE.replace("{after}", after))
        params = {"flow_id": FLOW, "limit": PAGE, "after": self.cursor.execution.created_at}
        return lambda: self._fetch(statement, params)

    def tree(self) -> Call:
        return lambda: self.store.get_execution_tree(f"B{0:08d}")

    def tree_sql(self) -> Call:
        statement = self._sql(Q.SUBTREE)
        return lambda: self._fetch(statement, {"id": f"B{0:08d}", "max_nodes": 10_000})


async def _check(listing: Listing) -> None:
    """Both queries list the same roots with the same aggregates; the tree is whole."""
    for deep in (False, True):
        ours = await listing.store.get_root_executions(FLOW, PAGE, listing.cursor if deep else None)
        cur = await listing.conn.execute(
            listing._sql(_REFERENCE_PAGE.replace(
                "{after}", "AND e.created_at < %(after)s" if deep else "")),
            {"flow_id": FLOW, "limit": PAGE, "after": listing.cursor.execution.created_at},
        )
        cols = [c.name for c in cur.description or []]
        theirs = [dict(zip(cols, row, strict=True)) for row in await cur.fetchall()]
        mine = [(r.execution.id, r.levels, r.total_nested) for r in ours]
        ref = [(r["id"], r["levels"], r["total_nested"] - 1) for r in theirs]
        if len(mine) != PAGE or mine != ref:
            raise RuntimeError(f"listing mismatch (deep={deep}): {mine[:3]} vs {ref[:3]}")
    nodes = await listing.store.get_execution_tree(f"B{0:08d}")
    if len(nodes) != TREE_NODES:
        raise RuntimeError(f"tree has {len(nodes)} nodes, not {TREE_NODES}")


async def _cursor(store: ExecutionStore, conn: AsyncConn, prefix: str, offset: int
                  ) -> RootExecution:
    cur = await conn.execute(_NTH_ROOT.replace("{p}", prefix).encode(),
                             {"flow_id": FLOW, "offset": offset})
    row = await cur.fetchone()
    execution = await store.get(str(row[0])) if row else None
    if execution is None:
        raise RuntimeError(f"no root at offset {offset}")
    return RootExecution(execution=execution, levels=0, total_nested=0)


async def _measure(ctx: Context, pg: PostgresBench, store: ExecutionStore, prefix: str,
                   trees: int) -> dict[str, Stats]:
    min_seconds = ctx.seconds(0.5, 0.05)

    def timed(call: Call) -> Callable[[int], Awaitable[float]]:
        async def measure(_rep: int) -> float:
            return await median_call(call, min_seconds=min_seconds) * 1000

        return measure

    async with await pg.connect() as conn:
        cursor = await _cursor(store, conn, prefix, int(trees * DEEP_FRACTION) - 1)
        listing = Listing(store, conn, prefix, cursor)
        await _check(listing)
        results = await repeat(ctx.reps, [
            ("fx_first", timed(listing.flowexec(False))),
            ("fx_deep", timed(listing.flowexec(True))),
            ("fx_sql_first", timed(listing.flowexec_sql(False))),
            ("fx_sql_deep", timed(listing.flowexec_sql(True))),
            ("ref_first", timed(listing.reference(False))),
            ("ref_deep", timed(listing.reference(True))),
            ("tree", timed(listing.tree())),
            ("tree_sql", timed(listing.tree_sql())),
        ])
        ctx.log("adding the reference's (flow_id, execution_depth, created_at) index")
        await conn.execute(sql.SQL(_REFERENCE_INDEX).format(
            sql.Identifier(f"{prefix}ref_flow_depth_created"),
            sql.Identifier(f"{prefix}executions")))
        await conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(f"{prefix}executions")))
        await _check(listing)
        results |= await repeat(ctx.reps, [
            ("fx2_first", timed(listing.flowexec(False))),
            ("fx2_deep", timed(listing.flowexec(True))),
            ("refidx_first", timed(listing.reference(False))),
            ("refidx_deep", timed(listing.reference(True))),
        ])
    return results


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    prefix = ctx.prefix("listing")
    trees = ctx.scale(100_000, 2_000)
    try:
        async with ctx.store(prefix, pool_min_size=1, pool_max_size=1) as store:
            ctx.log(f"loading {trees:,} trees")
            rows = await load(
                pg, prefix,
                Load("T", trees, size=1, size_cycle=19, flow_id=FLOW),
                Load("B", 1, size=TREE_NODES, flow_id=TREE_FLOW),
                vacuum=True,
            )
            results = await _measure(ctx, pg, store, prefix, trees)
    finally:
        await ctx.drop(prefix)
    return [_table(ctx, trees, rows, results)]


def _table(ctx: Context, trees: int, rows: int, r: dict[str, Stats]) -> Table:
    table = Table(
        f"4. Listing: {rows:,} executions in {trees + 1:,} trees, pages of {PAGE} roots",
        ["query", "first page (ms)", f"deep page, root {int(trees * DEEP_FRACTION):,} (ms)",
         "deep / first"],
    )

    def row(label: str, first: Stats, deep: Stats) -> None:
        table.add(label, first.cell(), deep.cell(), f"{fmt(ratio(deep, first))}x")

    row("flowexec get_root_executions (API, model objects)", r["fx_first"], r["fx_deep"])
    row("flowexec statement only (driver rows)", r["fx_sql_first"], r["fx_sql_deep"])
    row("reference query on flowexec's indexes", r["ref_first"], r["ref_deep"])
    table.add("*with the reference's (flow_id, execution_depth, created_at) index added:*",
              "", "", "")
    row("flowexec get_root_executions (API, model objects)", r["fx2_first"], r["fx2_deep"])
    row("reference query with its own index", r["refidx_first"], r["refidx_deep"])
    table.add(f"flowexec get_execution_tree, {TREE_NODES:,} nodes (API)", r["tree"].cell(),
              "", "")
    table.add(f"flowexec subtree statement only, {TREE_NODES:,} nodes", r["tree_sql"].cell(),
              "", "")
    for label, fx, ref in (("", "fx", "ref"), (" with its own index", "fx2", "refidx")):
        for page in ("first", "deep"):
            speedup = ratio(r[f"{ref}_{page}"], r[f"{fx}_{page}"])
            table.targets.append(Target(
                f"{page} page ≥ {TARGET_SPEEDUP:g}x faster than the reference{label}",
                f"{fmt(speedup)}x", speedup >= TARGET_SPEEDUP))
    deep = ratio(r["fx_deep"], r["fx_first"])
    table.targets.append(Target(f"deep page within {TARGET_DEEP:g}x of the first",
                                f"{fmt(deep)}x", deep <= TARGET_DEEP))
    table.notes += [
        "Each figure is the median call time of a repetition (at least "
        f"{ctx.seconds(0.5, 0.05):g} s of calls), then median (min-max) over repetitions.",
        "Speed-ups compare the store API (model objects included) with the reference's bare "
        "statement, measured in the same repetitions; both return the same roots with the same "
        "aggregates (checked).",
    ]
    return table


WORKLOAD = Workload("listing", "Listing at scale", frozenset({"postgres"}), run)
