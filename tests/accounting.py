"""The accounting that decides whether every run of every execution is explained: nothing
lost, nothing extra, no execution completed by two runs."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.marks import Mark
from tests.tables import ExecutionRow, RecoveryRow

Run = tuple[str, int]
"""(worker id, attempt)."""


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

    def summary(self) -> str:
        return (
            f"executions={self.executions} completed={self.completed} "
            f"recoveries={self.recoveries} {dict(self.recoveries_by_reason)} "
            f"runs started={self.runs_started} "
            f"finished-but-taken-over={self.finishes_not_accepted} "
            f"duplicates={self.duplicates} lost={self.lost} unexpected={self.unexpected} "
            f"flow_retries={self.flow_retries}"
        )


def assert_each_ran_once(acc: Accounting, *, total: int) -> None:
    """Every one of `total` executions completed, none lost or extra, and each completed by
    one run: every other run it had is explained (taken over, or requeued unfinished)."""
    assert acc.problems == [], acc.problems
    assert (acc.lost, acc.unexpected, acc.duplicates) == (0, 0, 0)
    assert acc.executions == acc.completed == total


def account(
    *,
    root_ids: dict[str, dict[str, Any]],
    executions: dict[str, ExecutionRow],
    recoveries: list[RecoveryRow],
    marks: list[Mark],
    strict: bool = True,
    results_name_runs: bool = True,
) -> Accounting:
    """Check every execution against its plan, its recovery records and its runs' marks.

    `root_ids`: each created root's plan: {"children": [plan, ...]}, where a child's plan
    has the `i` of the event that emitted it and, optionally, children of its own. With
    `strict` (no flow can fail on its own) the k-th recovery record of an execution ends its
    k-th attempt, so:
    - `failure_count` = number of recovery records = n, and the accepted run is attempt n+1;
    - every started run of attempt k <= n was taken over from its worker by record k;
    - at most one run starts per attempt, and a run that wrote its finish mark either is the
      accepted one or was taken over (its completion was refused).
    Without `strict` (flow retries may count failures too, and a run that met a store outage
    is requeued without counting one) the same checks hold but for the mapping of attempts
    to records: failure_count >= records, finishes <= 1 + failure_count, and one attempt may
    be started more than once as long as at most one of those runs finished.
    With `results_name_runs` the result of an execution names the run whose completion the
    store accepted ({"worker": ..., "attempt": ...}); without, that is its finished run of
    attempt failure_count + 1.
    """
    acc = Accounting(executions=len(executions), recoveries=len(recoveries))
    records: dict[str, list[RecoveryRow]] = defaultdict(list)
    for record in recoveries:
        records[record.execution_id].append(record)
        acc.recoveries_by_reason[record.reason] += 1
        if record.previous_status not in ("running", "paused"):
            acc.problem(f"record {record} recovered a {record.previous_status} execution")
    starts: dict[str, list[Run]] = defaultdict(list)
    finishes: dict[str, list[Run]] = defaultdict(list)
    for kind, execution_id, worker_id, attempt, _ in marks:
        if kind in ("start", "finish"):  # the runs; nodes may mark too (durable steps)
            (starts if kind == "start" else finishes)[execution_id].append((worker_id, attempt))
    acc.runs_started = sum(len(v) for v in starts.values())
    for execution_id in sorted((starts.keys() | finishes.keys()) - executions.keys()):
        acc.problem(f"runs of {execution_id}, which is not among the executions")

    _check_plans(acc, root_ids, executions)
    for row in executions.values():
        if row.status != "completed":
            acc.problem(f"{row.id} ended {row.status}: {row.last_failure_reason}")
            continue
        acc.completed += 1
        if results_name_runs:
            accepted: Run | None = (row.result["worker"], row.result["attempt"])
        else:
            last = row.failure_count + 1
            accepted = next((run for run in finishes[row.id] if run[1] == last), None)
        if accepted is None:
            acc.problem(f"{row.id}: no finished run of attempt {row.failure_count + 1}")
            continue
        _check_runs(acc, row, accepted, records.get(row.id, []), starts[row.id],
                    finishes[row.id], strict)
    return acc


def _plan_size(plan: dict[str, Any]) -> int:
    return 1 + sum(_plan_size(child) for child in plan.get("children", []))


def _check_plans(
    acc: Accounting, root_ids: dict[str, dict[str, Any]], executions: dict[str, ExecutionRow]
) -> None:
    """None lost, none unexpected: each root and each descendant it planned, once."""
    children: dict[str, list[ExecutionRow]] = defaultdict(list)
    for row in executions.values():
        if row.parent_id is not None:
            children[row.parent_id].append(row)
    explained: set[str] = set()
    pending = list(root_ids.items())
    while pending:
        execution_id, plan = pending.pop()
        if execution_id not in executions:
            acc.lost += _plan_size(plan)
            acc.problem(f"root {execution_id} is missing")
            continue
        explained.add(execution_id)
        planned = {child["i"]: child for child in plan.get("children", [])}
        got = sorted(row.events[0]["payload"]["i"] for row in children[execution_id])
        want = list(planned)
        if got != want:
            acc.lost += sum(_plan_size(planned[i]) for i in set(want) - set(got))
            acc.unexpected += max(len(got) - len(set(got)), 0) + len(set(got) - set(want))
            acc.problem(f"{execution_id} has children {got}, planned {want}")
        for row in children[execution_id]:
            explained.add(row.id)
            child_plan = planned.get(row.events[0]["payload"]["i"])
            if child_plan is not None:
                pending.append((row.id, child_plan))
    acc.unexpected += len(set(executions) - explained)


def _check_runs(
    acc: Accounting,
    row: ExecutionRow,
    accepted: Run,
    own: list[RecoveryRow],
    starts: list[Run],
    finishes: list[Run],
    strict: bool,
) -> None:
    """The runs of one completed execution, against its recovery records `own`."""
    n = len(own)
    if strict and row.failure_count != n:
        acc.problem(f"{row.id}: failure_count {row.failure_count} but {n} recovery records")
    if row.failure_count < n:
        acc.problem(f"{row.id}: failure_count {row.failure_count} below {n} records")
    acc.flow_retries += max(row.failure_count - n, 0)
    if accepted[1] != row.failure_count + 1:
        acc.problem(f"{row.id}: accepted attempt {accepted[1]}, failure_count "
                    f"{row.failure_count}")
    per_attempt = Counter(attempt for _, attempt in starts)
    finished_per_attempt = Counter(attempt for _, attempt in finishes)
    for attempt, count in per_attempt.items():
        # Without `strict`, a run that met the outage is requeued without counting a
        # failure, so its re-run shares its attempt; two *finished* runs are duplicates.
        if count > 1 and (strict or finished_per_attempt[attempt] > 1):
            acc.duplicates += count - 1
            acc.problem(f"{row.id}: {count} runs started as attempt {attempt}")
    if accepted not in starts:
        acc.problem(f"{row.id}: the accepted run {accepted} has no start mark")
    if accepted not in finishes:
        acc.problem(f"{row.id}: the accepted run {accepted} has no finish mark")
    for worker_id, attempt in starts:
        if (worker_id, attempt) == accepted:
            continue
        if attempt > accepted[1]:
            acc.problem(f"{row.id}: run {(worker_id, attempt)} after the accepted one")
        elif strict and (attempt > n or own[attempt - 1].previous_worker_id != worker_id):
            record = own[attempt - 1] if attempt <= n else None
            acc.problem(f"{row.id}: run {(worker_id, attempt)} ended without its "
                        f"takeover recorded: {record}")
    for worker_id, attempt in finishes:
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
    if not strict and len(finishes) > 1 + row.failure_count:
        acc.problem(f"{row.id}: {len(finishes)} finished runs, "
                    f"failure_count {row.failure_count}")
