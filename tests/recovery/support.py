"""Shared pieces of the recovery tests: worker processes, reading the store's tables, plans of
work, and the accounting that decides whether every run is explained."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from flowexec import (
    ExecutionStatus,
    ExecutionStore,
    RecoveryRecord,
    UpdateExecutionStatusParams,
    new_execution,
)
from tests.runtime.processes import REPO_SRC, worker_log

from .chaos_app import GHOST, read_marks

CHAOS_APP = Path(__file__).with_name("chaos_app.py")
REPO_ROOT = REPO_SRC.parent

LEASE_MS = 1_000
SWEEP_S = 0.5

FAST_RECOVERY: dict[str, Any] = {
    "concurrency": 16,
    "claim_timeout_ms": LEASE_MS,
    "heartbeat_interval_ms": 250,
    "recovery_interval_s": SWEEP_S,
    "recovery_max_failures": 1_000,  # nothing in these tests may legitimately fail
    "retry_backoff_base_ms": 100,
    "retry_backoff_max_ms": 2_000,
    "control_interval_s": 0.25,
    "shutdown_grace_s": 5.0,
}
"""Short leases and a quick sweep, so that a killed worker's runs come back within seconds."""

POSTGRES_POOL = {"pool_max_size": 6}
"""Four workers, their marks and the test stay well under the server's 100 connections."""


def worker_settings(backend: str, **overrides: Any) -> dict[str, Any]:
    settings = {**FAST_RECOVERY, **(POSTGRES_POOL if backend == "postgres" else {})}
    settings.update(overrides)
    return settings


def marks_target(backend: str, store_url: str, tmp_path: Path) -> str:
    """Postgres: the store's own database; SQLite: a file of the test's own."""
    return store_url if backend == "postgres" else str(tmp_path / "marks.db")


# ------------------------------------------------------------------ processes


class WorkerProcess:
    """One worker OS process running `chaos_app.py`, logging to `<log_dir>/<worker_id>.log`."""

    def __init__(
        self,
        url: str,
        prefix: str,
        marks: str,
        worker_id: str,
        log_dir: Path,
        settings: dict[str, Any],
    ) -> None:
        self.worker_id = worker_id
        self.log_dir = log_dir
        env = {
            **os.environ,
            "RECOVERY_TEST_URL": url,
            "RECOVERY_TEST_PREFIX": prefix,
            "RECOVERY_TEST_MARKS": marks,
            "RECOVERY_TEST_WORKER": json.dumps({"worker_id": worker_id, **settings}),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_SRC), str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
            ),
        }
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"{worker_id}.log").open("wb") as log:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [sys.executable, str(CHAOS_APP)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return worker_log(self.log_dir, self.worker_id)

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.worker_id} ---\n{self.log()[-chars:]}"

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs; the kernel closes its sockets and file locks."""
        self.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.process.wait, 10)

    async def terminate(self, *, within: float = 30) -> int:
        """SIGTERM, a graceful shutdown; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, within)

    async def wait_started(self, within: float = 30) -> None:
        """Until the worker has opened its store and entered its loops."""
        deadline = time.monotonic() + within
        while "worker started" not in self.log():
            assert self.alive, self.tail()
            assert time.monotonic() < deadline, f"{self.worker_id} did not start\n{self.tail()}"
            await asyncio.sleep(0.05)


def stop_processes(workers: Iterable[WorkerProcess]) -> None:
    """Make sure no worker outlives its test."""
    for worker in workers:
        if worker.alive:
            worker.process.kill()
            worker.process.wait(10)


# ------------------------------------------------------------------ reading the store


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    id: str
    parent_id: str | None
    status: str
    failure_count: int
    result: Any
    events: Any
    last_failure_reason: str | None
    processing_worker_id: str | None


@dataclass(frozen=True, slots=True)
class RecoveryRow:
    id: int
    execution_id: str
    recovered_by: str
    reason: str
    previous_status: str | None
    previous_worker_id: str | None


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class Tables:
    """Plain SQL reads of the store's tables (SPEC §2 names), for checks over thousands of rows.

    Every call opens its own connection, so that a database restart costs one failed call.
    """

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.is_postgres = not url.startswith("sqlite")

    def _query(self, template: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        sql = template.replace("{p}", self.prefix)
        if self.is_postgres:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as pg:
                return [tuple(r) for r in pg.execute(sql.replace("?", "%s"), params).fetchall()]
        path = self.url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=30)
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    async def query(self, template: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._query, template, params)

    async def executions(self) -> dict[str, ExecutionRow]:
        rows = await self.query(
            "SELECT id, parent_execution_id, status, failure_count, result, external_events,"
            " last_failure_reason, processing_worker_id FROM {p}executions"
        )
        return {
            r[0]: ExecutionRow(r[0], r[1], r[2], int(r[3]), _json(r[4]), _json(r[5]), r[6], r[7])
            for r in rows
        }

    async def raw_executions(self) -> dict[str, tuple[Any, ...]]:
        """Every column of every execution, exactly as stored."""
        rows = await self.query("SELECT * FROM {p}executions ORDER BY id")
        return {str(r[0]): r for r in rows}

    async def recoveries(self) -> list[RecoveryRow]:
        rows = await self.query(
            "SELECT id, execution_id, recovered_by_worker, recovery_reason, previous_status,"
            " previous_worker_id FROM {p}execution_recovery ORDER BY id"
        )
        return [RecoveryRow(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def status_counts(self) -> Counter[str]:
        rows = await self.query("SELECT status, count(*) FROM {p}executions GROUP BY status")
        return Counter({str(r[0]): int(r[1]) for r in rows})

    async def held_by(self, worker_id: str) -> list[tuple[str, str]]:
        """(execution id, status) of what `worker_id` holds by an active claim of the current
        epoch: after its SIGKILL, what recovery (or the queue) must take over."""
        return [
            (str(r[0]), str(r[1]))
            for r in await self.query(
                "SELECT e.id, e.status FROM {p}executions e JOIN {p}execution_claims c"
                " ON c.execution_id = e.id"
                " WHERE c.worker_id = ? AND c.status = 'active'"
                " AND e.processing_worker_id = ? AND e.claim_epoch = c.epoch",
                (worker_id, worker_id),
            )
        ]


async def plant_dead_run(store: ExecutionStore, worker_id: str = "ghost-worker") -> str:
    """A `running` execution whose worker is gone: its 1 ms lease has run out already. Its
    flow is one no worker runs, so only recovery will ever move it."""
    execution = new_execution(GHOST, "ghosts")
    await store.create(execution)
    claim = await store.claim_execution(execution.id, worker_id, 1)
    assert claim is not None
    await store.update_execution_status(
        UpdateExecutionStatusParams(
            execution.id, ExecutionStatus.RUNNING, worker_id=worker_id, epoch=claim.epoch
        )
    )
    return execution.id


async def wait_recovered(
    store: ExecutionStore, execution_id: str, *, within: float = 30
) -> tuple[RecoveryRecord, float]:
    """The first recovery record of `execution_id`, and when (monotonic) the test saw it."""
    deadline = time.monotonic() + within
    while True:
        history = await store.get_recovery_history(execution_id)
        if history:
            return history[0], time.monotonic()
        assert time.monotonic() < deadline, f"{execution_id} not recovered within {within} s"
        await asyncio.sleep(0.01)


async def wait_for_mark(
    marks: str, prefix: str, kind: str, execution_id: str, worker_id: str, attempt: int,
    *, workers: Iterable[WorkerProcess] = (), within: float = 30,
) -> None:
    """Until the run (`worker_id`, `attempt`) of `execution_id` wrote its `kind` mark."""
    wanted = (kind, execution_id, worker_id, attempt)
    deadline = time.monotonic() + within
    while True:
        got = await asyncio.to_thread(read_marks, marks, prefix)
        if wanted in {m[:4] for m in got}:
            return
        assert time.monotonic() < deadline, (
            f"no {kind} mark of {execution_id} by {worker_id} (attempt {attempt}): {got}\n"
            + "\n".join(w.tail() for w in workers)
        )
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ plans


@dataclass
class Plans:
    """Roots to create, each with its integration (the plan of the root and its children)."""

    roots: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(1 + len(p["children"]) for p in self.roots)

    @property
    def children(self) -> int:
        return self.total - len(self.roots)


def _sleeps(rng: random.Random, long_share: float) -> list[float]:
    if rng.random() < long_share:  # 0.2-1.5 s over 2-3 nodes: likely mid-run at a kill
        total = rng.uniform(0.2, 1.5)
        parts = rng.randint(2, 3)
        return [round(total / parts, 3)] * parts
    return [round(rng.uniform(0, 0.02), 3)]


def make_plans(
    total: int, *, seed: int, parent_share: float = 0.15, long_share: float = 0.4
) -> Plans:
    """`total` executions: roots, some of which emit 2-4 children."""
    rng = random.Random(seed)
    plans = Plans()
    made = 0
    while made < total:
        fan = rng.randint(2, 4) if rng.random() < parent_share else 0
        fan = min(fan, total - made - 1)
        children = [{"i": i, "sleeps": _sleeps(rng, long_share)} for i in range(fan)]
        plans.roots.append({"sleeps": _sleeps(rng, long_share), "children": children})
        made += 1 + fan
    return plans


# ------------------------------------------------------------------ accounting


@dataclass
class Accounting:
    """What the tables and the marks say about every run of every execution."""

    executions: int = 0
    completed: int = 0
    lost: int = 0
    unexpected: int = 0
    recoveries: int = 0
    recoveries_by_reason: Counter[str] = field(default_factory=Counter)
    runs_started: int = 0
    finishes_not_accepted: int = 0
    """Runs that wrote their finish mark but whose completion the store refused (taken over)."""
    duplicates: int = 0
    """Runs that are not explained: a second run of one attempt, or a finish not taken over."""
    flow_retries: int = 0
    """Failures the flow counted itself (failure_count above the recovery records)."""
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


def account(
    *,
    root_ids: dict[str, dict[str, Any]],
    executions: dict[str, ExecutionRow],
    recoveries: list[RecoveryRow],
    marks: list[tuple[str, str, str, int, float]],
    strict: bool = True,
) -> Accounting:
    """Check every execution against its recovery records and its runs' marks.

    `root_ids`: each created root's plan. With `strict` (no flow can fail on its own) the
    k-th recovery record of an execution ends its k-th attempt, so:
    - `failure_count` = number of recovery records = n, and the accepted run is attempt n+1;
    - every started run of attempt k <= n was taken over from its worker by record k;
    - at most one run starts per attempt, and a run that wrote its finish mark either is the
      accepted one or was taken over (its completion was refused).
    Without `strict` (flow retries may count failures too, and a run that met a store outage
    is requeued without counting one) the same checks hold but for the mapping of attempts
    to records: failure_count >= records, finishes <= 1 + failure_count, and one attempt may
    be started more than once as long as at most one of those runs finished.
    """
    acc = Accounting(executions=len(executions), recoveries=len(recoveries))
    records: dict[str, list[RecoveryRow]] = defaultdict(list)
    for record in recoveries:
        records[record.execution_id].append(record)
        acc.recoveries_by_reason[record.reason] += 1
        if record.previous_status not in ("running", "paused"):
            acc.problem(f"record {record} recovered a {record.previous_status} execution")
    starts: dict[str, list[tuple[str, int]]] = defaultdict(list)
    finishes: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for kind, execution_id, worker_id, attempt, _ in marks:
        (starts if kind == "start" else finishes)[execution_id].append((worker_id, attempt))
    acc.runs_started = sum(len(v) for v in starts.values())

    # None lost, none unexpected: each root and each child it planned, once.
    children: dict[str, list[ExecutionRow]] = defaultdict(list)
    for row in executions.values():
        if row.parent_id is not None:
            children[row.parent_id].append(row)
    for root_id, plan in root_ids.items():
        if root_id not in executions:
            acc.lost += 1 + len(plan["children"])
            acc.problem(f"root {root_id} is missing")
            continue
        got = sorted(row.events[0]["payload"]["i"] for row in children[root_id])
        want = [child["i"] for child in plan["children"]]
        if got != want:
            acc.lost += len(set(want) - set(got))
            acc.unexpected += max(len(got) - len(set(got)), 0) + len(set(got) - set(want))
            acc.problem(f"root {root_id} has children {got}, planned {want}")
    roots_and_children = set(root_ids) | {
        row.id for row in executions.values() if row.parent_id in root_ids
    }
    acc.unexpected += len(set(executions) - roots_and_children)

    for row in executions.values():
        own = records.get(row.id, [])
        n = len(own)
        if row.status == "completed":
            acc.completed += 1
        else:
            acc.problem(f"{row.id} ended {row.status}: {row.last_failure_reason}")
            continue
        if strict and row.failure_count != n:
            acc.problem(f"{row.id}: failure_count {row.failure_count} but {n} recovery records")
        if row.failure_count < n:
            acc.problem(f"{row.id}: failure_count {row.failure_count} below {n} records")
        acc.flow_retries += max(row.failure_count - n, 0)
        accepted = (row.result["worker"], row.result["attempt"])
        if accepted[1] != row.failure_count + 1:
            acc.problem(f"{row.id}: accepted attempt {accepted[1]}, failure_count "
                        f"{row.failure_count}")
        per_attempt = Counter(attempt for _, attempt in starts[row.id])
        finished_per_attempt = Counter(attempt for _, attempt in finishes[row.id])
        for attempt, count in per_attempt.items():
            # Without `strict`, a run that met the outage is requeued without counting a
            # failure, so its re-run shares its attempt; two *finished* runs are duplicates.
            if count > 1 and (strict or finished_per_attempt[attempt] > 1):
                acc.duplicates += count - 1
                acc.problem(f"{row.id}: {count} runs started as attempt {attempt}")
        if accepted not in starts[row.id]:
            acc.problem(f"{row.id}: the accepted run {accepted} has no start mark")
        if accepted not in finishes[row.id]:
            acc.problem(f"{row.id}: the accepted run {accepted} has no finish mark")
        for worker_id, attempt in starts[row.id]:
            if (worker_id, attempt) == accepted:
                continue
            if attempt > accepted[1]:
                acc.problem(f"{row.id}: run {(worker_id, attempt)} after the accepted one")
            elif strict and (attempt > n or own[attempt - 1].previous_worker_id != worker_id):
                record = own[attempt - 1] if attempt <= n else None
                acc.problem(f"{row.id}: run {(worker_id, attempt)} ended without its "
                            f"takeover recorded: {record}")
        for worker_id, attempt in finishes[row.id]:
            if (worker_id, attempt) == accepted:
                continue
            taken_over = (
                attempt <= n and own[attempt - 1].previous_worker_id == worker_id
                if strict
                else attempt < accepted[1]
            )
            if taken_over:
                acc.finishes_not_accepted += 1
            else:
                acc.duplicates += 1
                acc.problem(f"{row.id}: run {(worker_id, attempt)} finished and was not "
                            "taken over: a second completed run")
        if not strict and len(finishes[row.id]) > 1 + row.failure_count:
            acc.problem(f"{row.id}: {len(finishes[row.id])} finished runs, "
                        f"failure_count {row.failure_count}")
    return acc


async def wait_all_finished(
    tables: Tables,
    expected_total: int,
    workers: list[WorkerProcess],
    *,
    within: float,
    what: str = "every execution to finish",
) -> None:
    """Until `expected_total` executions exist and all are terminal; every worker must live."""
    deadline = time.monotonic() + within
    counts: Counter[str] = Counter()
    while True:
        try:
            counts = await tables.status_counts()
        except (psycopg.OperationalError, sqlite3.OperationalError):
            counts = Counter()  # the database is restarting: look again
        terminal = sum(counts[s] for s in ("completed", "failed", "stopped"))
        if sum(counts.values()) == expected_total and terminal == expected_total:
            return
        dead = [w for w in workers if not w.alive]
        assert not dead, "a worker died on its own:\n" + "\n".join(w.tail() for w in dead)
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what}: {dict(counts)} of {expected_total}\n"
            + "\n".join(w.tail(1500) for w in workers)
        )
        await asyncio.sleep(0.25)
