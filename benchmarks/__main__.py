"""`python -m benchmarks [--quick] [--backend postgres|sqlite] [--out FILE.md] [--only a,b]
[--pgbouncer] [--peers]`.

Runs every workload that applies to the backend, prints each table as it is measured and
writes them all to `--out`. Exits 1 if a workload failed (an error, never a missed target).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

from benchmarks._common import Context, Workload
from benchmarks._pgbouncer import (
    POOLED_WORKLOADS,
    pgbouncer_in_front_of,
    pooled_routes,
    session_url_env,
)
from benchmarks._postgres import bench_database
from benchmarks._report import Report, header

WORKLOADS = ("claim_one", "drain", "sqlite_drain", "latency", "listing", "flat_cost", "recovery",
             "steps", "api", "metrics_scrape", "heartbeat", "dashboard", "peers")
"""Modules of this package, in the order they run; each defines `WORKLOAD`."""


def _load(name: str) -> Workload | None:
    try:
        module = importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"benchmarks.{name}":
            return None  # not written yet
        raise
    workload = getattr(module, "WORKLOAD", None)
    if not isinstance(workload, Workload):
        raise TypeError(f"benchmarks.{name} has no WORKLOAD")
    return workload


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, a smoke test of every workload (under a minute)")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--only", help="comma-separated workload names: " + ", ".join(WORKLOADS))
    parser.add_argument("--reps", type=int, default=3, help="repetitions per figure (>= 3)")
    parser.add_argument("--pgbouncer", action="store_true",
                        help="also run the drain and the latency through a PgBouncer of its "
                        "own (transaction pooling): with LISTEN on its session alias, and "
                        "with the transaction alias alone (polling)")
    parser.add_argument("--peers", action="store_true",
                        help="only flowexec's Worker against pgqueuer, procrastinate and oban "
                        "(pip install -e '.[bench]'); one repetition with --quick")
    args = parser.parse_args(argv)
    if args.reps < 3:
        parser.error("--reps must be at least 3")
    if args.peers and (args.only or args.backend != "postgres"):
        parser.error("--peers runs on PostgreSQL alone: drop --only and --backend")
    if args.only:
        unknown = set(args.only.split(",")) - set(WORKLOADS)
        if unknown:
            parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return args


async def _run(ctx: Context, report: Report, names: list[str]) -> list[str]:
    failed: list[str] = []
    for name in names:
        workload = _load(name)
        if workload is None or ctx.backend not in workload.backends:
            continue
        print(f"» {workload.title} ({ctx.backend})", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            for table in await workload.run(ctx):
                report.add(table)
        except Exception as exc:
            traceback.print_exc()
            report.error(workload.title, f"{type(exc).__name__}: {exc}")
            failed.append(name)
        print(f"  {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = ["peers"] if args.peers else args.only.split(",") if args.only else list(WORKLOADS)
    started = time.perf_counter()
    with ExitStack() as stack:
        pg = stack.enter_context(bench_database()) if args.backend == "postgres" else None
        sqlite_dir = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="flowexec-bench-"))
        )
        ctx = Context(
            backend=args.backend, quick=args.quick, reps=args.reps, postgres=pg,
            sqlite_dir=sqlite_dir,
        )
        extra = []
        if pg is not None and "peers" in names:
            from benchmarks.peers import versions_line

            extra.append(versions_line())
        reps = 1 if args.peers and args.quick else args.reps  # --peers --quick measures once
        report = Report(header(args.backend, args.quick, reps, pg, extra), args.quick, args.out)
        failed = asyncio.run(_run(ctx, report, names))
        if args.pgbouncer and pg is not None:
            bouncer = stack.enter_context(pgbouncer_in_front_of(pg.url))
            pooled = [n for n in names if n in POOLED_WORKLOADS]
            for route, session_url in pooled_routes(bouncer):
                with session_url_env(session_url):
                    ctx = dataclasses.replace(
                        ctx, pooled_url=bouncer.url, route=route, listens=bool(session_url)
                    )
                    failed += asyncio.run(_run(ctx, report, pooled))
    print(f"total: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if failed:
        print(f"failed workloads: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
