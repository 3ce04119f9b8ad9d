"""SQLite drain: executions claimed and completed per second by 1 and 4 OS processes on one file.

Each repetition creates N executions through the store in a fresh database file, then starts
the processes together; each loops `claim_and_start(limit=10)`, which completes the batch it
took before and claims and starts the next in one transaction, until the queue is empty. The
clock runs from the common start to the last process's last commit; creation and process
start-up are outside it. Every repetition checks that each execution was
claimed exactly once and ended `completed`.

Standalone: `python -m benchmarks.sqlite_drain` or `python benchmarks/sqlite_drain.py`
(`--help` for sizes); also the `sqlite_drain` workload of `python -m benchmarks --backend sqlite`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

try:
    from benchmarks._common import Context, Stats, Table, Workload
except ModuleNotFoundError:  # run as a script: the repository root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks._common import Context, Stats, Table, Workload

from flowexec import open_store
from flowexec.model import Completion, new_execution

PREFIX = "flowexec_"
BATCH = 10
LEASE_MS = 60_000
PROCESS_COUNTS = (1, 4)


@dataclass(frozen=True, slots=True)
class ProcessResult:
    worker: str
    claimed: list[str]
    started: float  # time.monotonic(): one system-wide clock for every process on Linux
    finished: float


async def _drain(url: str, worker: str, start: Barrier, options: dict[str, Any]) -> ProcessResult:
    store = await open_store(url, table_prefix=PREFIX, migrate=False, **options)
    try:
        start.wait()
        started = time.monotonic()
        claimed: list[str] = []
        returned: list[Completion] = []
        while True:
            batch = await store.claim_and_start(
                worker, LEASE_MS, limit=0 if returned else BATCH, complete=returned
            )
            if len(batch.completed) != len(returned):
                raise RuntimeError(f"{worker}: a completion was refused")
            if not batch.started:
                break
            claimed += [s.claim.execution_id for s in batch.started]
            returned = [Completion(s.claim.execution_id, s.claim.epoch) for s in batch.started]
        return ProcessResult(worker, claimed, started, time.monotonic())
    finally:
        await store.close()


def _process_main(
    url: str, worker: str, start: Barrier, results: Any, options: dict[str, Any]
) -> None:
    """One OS process: drain until the queue is empty, then report what it claimed."""
    results.put(asyncio.run(_drain(url, worker, start, options)))


async def _create(url: str, count: int, options: dict[str, Any]) -> None:
    async with await open_store(url, table_prefix=PREFIX, **options) as store:
        for n in range(count):
            await store.create(new_execution("bench", f"owner-{n % 10}"))


async def _check(url: str, count: int, options: dict[str, Any]) -> None:
    async with await open_store(url, table_prefix=PREFIX, migrate=False, **options) as store:
        stats = await store.get_stats()
    counts = {k: v for k, v in stats.counts_by_status.items() if v}
    if counts != {"completed": count}:
        raise RuntimeError(f"after the drain: {counts}, expected {count} completed")


def measure(directory: Path, processes: int, count: int, synchronous: str) -> float:
    """One repetition in a fresh file: executions claimed and completed per second."""
    handle, name = tempfile.mkstemp(suffix=".db", dir=directory)
    os.close(handle)
    Path(name).unlink()  # a fresh path; the store creates the file
    url = f"sqlite:///{name}"
    options = {"synchronous": synchronous}
    asyncio.run(_create(url, count, options))
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_process_main, args=(url, f"w{n}", start, results, options))
        for n in range(processes)
    ]
    for proc in procs:
        proc.start()
    done: list[ProcessResult] = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        if proc.exitcode != 0:
            raise RuntimeError(f"drain process {proc.name} exited with {proc.exitcode}")
    claimed = [i for r in done for i in r.claimed]
    if len(claimed) != count or len(set(claimed)) != count:
        raise RuntimeError(f"{len(claimed)} claims of {len(set(claimed))} executions, not {count}")
    asyncio.run(_check(url, count, options))
    for suffix in ("", "-wal", "-shm"):
        Path(name + suffix).unlink(missing_ok=True)
    elapsed = max(r.finished for r in done) - min(r.started for r in done)
    return count / elapsed


def _table(count: int, synchronous: str, results: dict[int, Stats]) -> Table:
    table = Table(
        f"SQLite drain: {count:,} executions, claim_and_start(limit={BATCH}) completing the "
        f"previous batch, synchronous={synchronous.upper()}",
        ["processes", "executions/s, median (min-max)", "runs"],
    )
    for processes, stats in results.items():
        runs = ", ".join(f"{v:,.0f}" for v in stats.values)
        table.add(processes, stats.cell(), runs)
    table.notes.append(
        f"Per execution: 1/{BATCH} transaction (BEGIN IMMEDIATE ... COMMIT on one WAL file) "
        "that completes the previous batch and claims and starts the next; creation and "
        "process start-up are not timed."
    )
    return table


def run_all(directory: Path, count: int, reps: int, synchronous: str) -> Table:
    results: dict[int, Stats] = {}
    for processes in PROCESS_COUNTS:
        values = [measure(directory, processes, count, synchronous) for _ in range(reps)]
        results[processes] = Stats.of(values)
    return _table(count, synchronous, results)


async def run(ctx: Context) -> list[Table]:
    count = ctx.scale(5_000, 500)
    return [await asyncio.to_thread(run_all, ctx.sqlite_dir, count, ctx.reps, "full")]


WORKLOAD = Workload("sqlite_drain", "SQLite drain (1 and 4 processes)", frozenset({"sqlite"}), run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sqlite_drain", description=__doc__)
    parser.add_argument("--executions", type=int, default=5_000, help="N per repetition")
    parser.add_argument("--reps", type=int, default=3, help="repetitions; the median is shown")
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    args = parser.parse_args(argv)
    if args.executions < 1 or args.reps < 1:
        parser.error("--executions and --reps must be positive")
    with tempfile.TemporaryDirectory(prefix="flowexec-sqlite-drain-") as directory:
        started = time.perf_counter()
        table = run_all(Path(directory), args.executions, args.reps, args.synchronous)
    print(table.markdown(quick=False))
    print(f"{args.reps} repetitions, one fresh database file each, "
          f"{time.perf_counter() - started:.0f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
