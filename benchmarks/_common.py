"""What every workload shares: repetitions and their statistics, tables, targets, the context.

A workload is a module exposing `WORKLOAD = Workload(...)`; its `run(ctx)` returns the tables
it measured. Figures are medians with the min-max of the repetitions; ratios are taken between
series measured in the same run, on the same database, interleaved repetition by repetition.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowexec import open_store
from flowexec.model import ExecutionClaim, ExecutionStatus, UpdateExecutionStatusParams
from flowexec.store.protocol import ExecutionStore

if TYPE_CHECKING:
    from benchmarks._postgres import PostgresBench

# ---------------------------------------------------------------- statistics


@dataclass(frozen=True, slots=True)
class Stats:
    """One figure measured once per repetition."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no repetitions were measured")
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def cell(self, unit: str = "") -> str:
        """`median (min-max)` with the same number format for all three."""
        suffix = f" {unit}" if unit else ""
        return f"{fmt(self.median)}{suffix} ({fmt(self.low)}-{fmt(self.high)})"


def fmt(value: float) -> str:
    """Three significant figures, thousands separated; integers stay whole."""
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of raw samples."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: Stats, denominator: Stats) -> float:
    """Ratio of medians."""
    return numerator.median / denominator.median if denominator.median else math.nan


class Clock:
    """Seconds since construction, on the monotonic high-resolution clock."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a local process, or None if it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def median_call(
    call: Callable[[], Awaitable[object]], *, min_calls: int = 3, min_seconds: float = 0.3
) -> float:
    """Call repeatedly (at least `min_calls` times and `min_seconds`); median seconds per call."""
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < min_calls or time.perf_counter() - started < min_seconds:
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


async def repeat(
    reps: int,
    series: Sequence[tuple[str, Callable[[int], Awaitable[float]]]],
) -> dict[str, Stats]:
    """Run each series once per repetition, interleaved (a1 b1 a2 b2 ...), so drift hits all."""
    values: dict[str, list[float]] = {name: [] for name, _ in series}
    for rep in range(reps):
        for name, measure in series:
            values[name].append(await measure(rep))
    return {name: Stats.of(v) for name, v in values.items()}


# ---------------------------------------------------------------- targets and tables


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from issue 7, reported next to the measured figure and never asserted."""

    goal: str
    measured: str
    met: bool

    def verdict(self, quick: bool) -> str:
        if quick:
            return "not judged (--quick)"
        return "**met**" if self.met else "**missed**"


@dataclass(slots=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self, quick: bool) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        if self.targets:
            lines += ["", "| target | measured | verdict |", "|---|---|---|"]
            lines.extend(
                f"| {t.goal} | {t.measured} | {t.verdict(quick)} |" for t in self.targets
            )
        if self.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
        lines.append("")
        return "\n".join(lines)


# ---------------------------------------------------------------- the context


@dataclass(slots=True)
class Context:
    """What a workload gets: the backend, the scale, and its databases."""

    backend: str
    quick: bool
    reps: int
    postgres: PostgresBench | None
    sqlite_dir: Path
    pooled_url: str | None = None
    """Stores open through PgBouncer's transaction alias at this URL (`--pgbouncer`)."""
    route: str = ""
    """How the stores reach PostgreSQL, for the tables' titles ("" when directly)."""
    listens: bool = True
    """False when PostgreSQL stores have no LISTEN and poll (a transaction alias alone)."""
    _prefixes: itertools.count[int] = field(default_factory=itertools.count)

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def prefix(self, name: str) -> str:
        return f"b{next(self._prefixes)}_{name}_"

    def require_postgres(self) -> PostgresBench:
        if self.postgres is None:
            raise RuntimeError("this workload needs the PostgreSQL bench database")
        return self.postgres

    def store_url(self, prefix: str) -> str:
        if self.backend == "postgres":
            return self.pooled_url or self.require_postgres().url
        return f"sqlite:///{self.sqlite_dir / (prefix + '.db')}"

    @asynccontextmanager
    async def store(self, prefix: str, **options: Any) -> AsyncIterator[ExecutionStore]:
        """A store on a table prefix; the prefix's tables are dropped afterwards (Postgres)."""
        store = await open_store(self.store_url(prefix), table_prefix=prefix, **options)
        try:
            yield store
        finally:
            await store.close()

    async def drop(self, prefix: str) -> None:
        if self.backend == "postgres":
            await self.require_postgres().drop_tables(prefix)

    def log(self, message: str) -> None:
        print(f"  · {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    title: str
    backends: frozenset[str]
    run: Callable[[Context], Awaitable[list[Table]]]


def sqlite_available() -> bool:
    """The SQLite backend is being written alongside; until it imports, its workloads skip."""
    try:
        from flowexec.store.sqlite import SqliteExecutionStore  # noqa: F401
    except ImportError:
        return False
    return True


def fenced(claim: ExecutionClaim, status: ExecutionStatus) -> UpdateExecutionStatusParams:
    """A status write guarded by the claim it was made under."""
    return UpdateExecutionStatusParams(
        claim.execution_id, status, worker_id=claim.worker_id, epoch=claim.epoch
    )


async def noop_flow() -> None:
    """The flow every throughput workload runs: nothing, but through the event loop."""
    return None
