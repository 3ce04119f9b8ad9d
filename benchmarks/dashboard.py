"""Workload 13: the dashboard's pages at 1,000,000 executions, over real HTTP.

The listing workload's data (100,000 trees of 1..19 nodes and one 1,000-node tree), plus 1,000
queued and 1,000 running executions (with live claims) in a third flow, so that the overview has
a queue, claims and throughput to show. A real `flowexec serve` process; one logged-in admin
session (the heaviest overview) requests each page in turn over keep-alive loopback HTTP, the
whole response read. Reported per page: p50, p95 and the slowest of the requests.

The overview's counts by status group the whole table, so the dashboard refreshes them in the
background every `COUNTS_TTL_S` (dashboard/counts.py): that query is timed on its own, as is
an owner's first overview, the one view that waits for it.
"""

from __future__ import annotations

import re
import statistics
import time

import httpx

from benchmarks._common import Context, Table, Target, Workload, fmt, percentile
from benchmarks._load import LIVE_LEASE_S, Load, load
from benchmarks.api import _free_port, _serve
from benchmarks.listing import DEEP_FRACTION, FLOW, TREE_FLOW, TREE_NODES, _cursor
from flowexec.api.cursors import encode_cursor
from flowexec.dashboard.counts import COUNTS_TTL_S

LIVE_FLOW = "bench-live-flow"
BUDGET_MS = 300.0


async def _timed(http: httpx.AsyncClient, path: str, times: int) -> list[float]:
    """Milliseconds per request of `path`, each a 200 read to its end."""
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        answer = await http.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    return samples


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    prefix = ctx.prefix("dashboard")
    trees = ctx.scale(100_000, 2_000)
    times = ctx.scale(30, 5)
    port = _free_port()
    try:
        async with ctx.store(prefix, pool_min_size=1, pool_max_size=1) as store:
            ctx.log(f"loading {trees:,} trees and a live flow")
            rows = await load(
                pg, prefix,
                Load("T", trees, size=1, size_cycle=19, flow_id=FLOW),
                Load("B", 1, size=TREE_NODES, flow_id=TREE_FLOW),
                Load("Q", 1_000, status="created", flow_id=LIVE_FLOW),
                Load("R", 1_000, status="running", flow_id=LIVE_FLOW, claim="active",
                     lease_s=LIVE_LEASE_S),
                vacuum=True,
            )
            bearer = (await store.create_token("bench", admin=True)).bearer
            owner_bearer = (await store.create_token("bench-owner")).bearer
            counts_ms = []
            for _ in range(3):
                began = time.perf_counter()
                await store.get_flow_counts()
                counts_ms.append((time.perf_counter() - began) * 1000)
            async with await pg.connect() as conn:
                deep = await _cursor(store, conn, prefix, int(trees * DEEP_FRACTION) - 1)
            server = await _serve(ctx.store_url(prefix), prefix, port)
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=60
                ) as http:
                    login = await http.post("/login", data={"token": bearer, "next": "/"})
                    if login.status_code != 303:
                        raise RuntimeError(f"login: {login.status_code}")
                    first = await _timed(http, "/", 1)
                    pages = {
                        "overview (counts cached)": "/",
                        "flow, first page of 50 roots": f"/flows/{FLOW}",
                        f"flow, deep page (root {int(trees * DEEP_FRACTION):,})":
                            f"/flows/{FLOW}?cursor={encode_cursor(deep)}",
                        "flow, status filter (running, none match)":
                            f"/flows/{FLOW}?status=running",
                        "flow, status filter (queued)": f"/flows/{LIVE_FLOW}?status=created",
                        "execution, a 19-node tree": f"/executions/T{18:08d}",
                        f"execution, the {TREE_NODES:,}-node tree (500 drawn)":
                            f"/executions/B{0:08d}",
                        "execution, running with a claim": f"/executions/R{0:08d}",
                    }
                    measured = {label: await _timed(http, path, times)
                                for label, path in pages.items()}
                    await http.post("/logout", data={"csrf": _csrf(await http.get("/"))})
                    await http.post("/login", data={"token": owner_bearer, "next": "/"})
                    owner_first = await _timed(http, "/", 1)
                    measured["overview of one owner (after its first)"] = await _timed(
                        http, "/", times
                    )
            finally:
                server.terminate()
                await server.wait()
    finally:
        await ctx.drop(prefix)
    return [_table(rows, times, first[0], owner_first[0], statistics.median(counts_ms),
                   measured)]


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    if found is None:
        raise RuntimeError("no CSRF token on the overview")
    return found.group(1)


def _table(rows: int, times: int, first: float, owner_first: float, counts: float,
           measured: dict[str, list[float]]) -> Table:
    table = Table(
        f"13. Dashboard pages with {rows:,} executions (`flowexec serve`, loopback HTTP)",
        ["page", "p50 (ms)", "p95 (ms)", "slowest (ms)"],
    )
    table.add("overview, the server's first request (admin)", fmt(first), "", "")
    for label, samples in measured.items():
        table.add(label, fmt(percentile(samples, 50)), fmt(percentile(samples, 95)),
                  fmt(max(samples)))
    table.add("overview, an owner's first view (its counts read then)", fmt(owner_first), "", "")
    table.add(f"the counts query the refresh runs every {COUNTS_TTL_S:g} s (not a request)",
              fmt(counts), "", "")
    slowest = max([first, owner_first, *(max(s) for s in measured.values())])
    table.targets.append(Target(
        f"every page view < {BUDGET_MS:g} ms (the slowest, first views included)",
        f"{fmt(slowest)} ms", slowest < BUDGET_MS))
    table.notes += [
        f"{times} requests per page, one after another, by one admin session (then one "
        "owner's); each figure includes authenticating the session's token and rendering the "
        "HTML. The refresh loop read the admins' counts when the server started, so the "
        "server's first overview found them.",
        f"The overview's counts by status are one grouped query over the whole table; a "
        f"background loop reads the admins' view at the start, then re-reads every "
        f"{COUNTS_TTL_S:g} s each view (the admins' or an owner's) looked at in the last 10 "
        "minutes. Its live figures (queue, throughput, recoveries, claims, workers) are read on "
        "every request through partial indexes.",
    ]
    return table


WORKLOAD = Workload("dashboard", "Dashboard pages at scale", frozenset({"postgres"}), run)
