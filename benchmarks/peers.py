"""Workload 8: flowexec's Worker side by side with the Python peers (issue 15).

pgqueuer, procrastinate and (on Python >= 3.12) oban, each through the same four phases as
flowexec's `Worker`, with the same no-op job: bulk enqueue, drain with one worker process of
concurrency 10, one-at-a-time enqueue, create -> start latency at a fixed rate (see
`_peers/harness.py`). Every library runs on a database created for that repetition, set up
and run the way its documentation says; repetitions are interleaved library by library.
A peer that is not installed (`pip install -e '.[bench]'`) is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks._common import Context, Stats, Table, Workload, ratio
from benchmarks._peers.harness import BATCH, PERCENTILES, Figures, Sizes, open_harness
from benchmarks._peers.library import FLOWEXEC, WORKER_CONCURRENCY, Library, available_peers

TITLE = "8. Peers"


def sizes(ctx: Context) -> Sizes:
    jobs = ctx.scale(20_000, 2_000)
    return Sizes(jobs=jobs, single=ctx.scale(2_000, 200), rate=100,
                 seconds=ctx.seconds(10.0, 2.0), drain_timeout_s=60.0 + jobs / 25)


def versions_line() -> str:
    """The peers' versions (and the skipped ones), for the report's header."""
    peers, skipped = available_peers()
    found = ", ".join(f"{p.name} {p.version()} ({p.driver})" for p in peers) or "none"
    return f"peers: {found}" + "".join(f"; skipped: {reason}" for reason in skipped)


async def run(ctx: Context) -> list[Table]:
    pg = ctx.require_postgres()
    peers, skipped = available_peers()
    for reason in skipped:
        ctx.log(f"skipped: {reason}")
    if not peers:
        table = Table(f"{TITLE}: flowexec's Worker and the Python peers", ["result"])
        table.add("skipped: no peer is installed (pip install -e '.[bench]')")
        return [table]
    libraries = [FLOWEXEC.load(), *peers]
    size = sizes(ctx)
    reps = 1 if ctx.quick else ctx.reps
    figures: dict[str, list[Figures]] = {lib.name: [] for lib in libraries}
    async with open_harness(pg, size, ctx.log) as harness:
        for rep in range(reps):
            for library in libraries:
                ctx.log(f"{library.name}, repetition {rep + 1} of {reps}")
                figures[library.name].append(await harness.measure(library, rep))
    return _tables(libraries, figures, size, reps, skipped)


def _stats(runs: list[Figures], pick: Callable[[Figures], float]) -> Stats:
    return Stats.of([pick(f) for f in runs])


def _phase(title: str, unit: str, libraries: list[Library], figures: dict[str, list[Figures]],
           columns: dict[str, Callable[[Figures], float]], notes: list[str],
           aside: dict[str, Callable[[Figures], float]] | None = None) -> Table:
    """One row per library: each column as median (min-max), then flowexec / that library,
    then the `aside` columns (no ratio)."""
    aside = aside or {}
    headers = ["library", *(f"{name} ({unit})" for name in columns)]
    headers += [f"flowexec / library, {name}" for name in columns]
    table = Table(title, [*headers, *aside], notes=notes)
    for library in libraries:
        runs = figures[library.name]
        cells = [_stats(runs, pick).cell() for pick in columns.values()]
        ratios = [
            "-" if library.name == "flowexec"
            else f"{ratio(_stats(figures['flowexec'], pick), _stats(runs, pick)):.2f}x"
            for pick in columns.values()
        ]
        extra = [_stats(runs, pick).cell() for pick in aside.values()]
        table.add(f"{library.name} {library.version()}", *cells, *ratios, *extra)
    return table


def _tables(libraries: list[Library], figures: dict[str, list[Figures]], size: Sizes,
            reps: int, skipped: list[str]) -> list[Table]:
    common = [
        "Ratios flowexec / library: above 1.00x flowexec is faster.",
        f"{reps} repetition(s) per library, interleaved; each on a database created for it. "
        "Setups: " + "; ".join(f"{lib.name}: {lib.worker_setup}, {lib.driver}"
                              for lib in libraries) + ".",
        *(f"skipped: {reason}" for reason in skipped),
    ]
    bulk = _phase(
        f"{TITLE} (a): bulk enqueue {size.jobs:,} jobs in batches of {BATCH:,}", "jobs/s",
        libraries, figures, {"rate": lambda f: f.bulk_per_s},
        [f"Each library's bulk API, no worker running; flowexec's is `client.create_many`, "
         f"one statement per batch of {BATCH:,}.", *common],
    )
    drain = _phase(
        f"{TITLE} (b): drain {size.jobs:,} jobs, one worker process, concurrency "
        f"{WORKER_CONCURRENCY}", "jobs/s", libraries, figures,
        {"rate": lambda f: f.drain_per_s},
        ["From the first job's start to the moment the library's own tables record the last "
         "one finished. Start-up, apart: from spawning the worker process to the first job's "
         "start (interpreter, imports, connecting, first claim)."],
        aside={"start-up (s)": lambda f: f.startup_s},
    )
    single = _phase(
        f"{TITLE} (c): enqueue one job at a time ({size.single:,} jobs)", "jobs/s",
        libraries, figures, {"rate": lambda f: f.single_per_s},
        ["Sequential awaits on one open client, no worker running."],
    )
    latency = _phase(
        f"{TITLE} (d): create -> start latency, {size.rate} jobs/s for {size.seconds:g} s",
        "ms", libraries, figures,
        {f"p{p}": (lambda f, p=p: f.latency_ms[p]) for p in PERCENTILES},
        ["From just before the enqueue call (its insert and commit included) to the job "
         "entering its function in the idle worker process, on the machine's monotonic "
         "clock; percentiles per repetition. Below 1.00x flowexec is faster."],
    )
    return [bulk, drain, single, latency]


WORKLOAD = Workload("peers", "Peers", frozenset({"postgres"}), run)
