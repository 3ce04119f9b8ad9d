"""The chaos test's bookkeeping catches what it is there to catch: a second completed run, a
run taken over without a recovery record, a lost or an extra child, a miscounted failure."""

from __future__ import annotations

from typing import Any

from tests.accounting import account
from tests.tables import ExecutionRow, RecoveryRow

PLAN: dict[str, Any] = {"sleeps": [0.1], "children": [{"i": 0, "sleeps": [0.1]}]}


def _row(id: str, *, parent: str | None = None, failures: int = 0, worker: str = "w2",
         status: str = "completed", i: int = 0) -> ExecutionRow:
    events = None if parent is None else [{"event_name": "spawn", "payload": {"i": i}}]
    return ExecutionRow(id, parent, status, failures, {"worker": worker, "attempt": failures + 1},
                        events, None, None)


def _record(n: int, execution_id: str, previous: str) -> RecoveryRow:
    return RecoveryRow(n, execution_id, "w9", "expired_claim", "running", previous)


def _marks(*runs: tuple[str, str, int, bool]) -> list[tuple[str, str, str, int, float]]:
    """(execution, worker, attempt, finished) -> start (and finish) marks."""
    marks = []
    for execution_id, worker, attempt, finished in runs:
        marks.append(("start", execution_id, worker, attempt, 0.0))
        if finished:
            marks.append(("finish", execution_id, worker, attempt, 0.0))
    return marks


def _clean() -> dict[str, Any]:
    """Root R ran on w1 (killed after finishing its work, taken over), then on w2; child C once."""
    return {
        "root_ids": {"R": PLAN},
        "executions": {"R": _row("R", failures=1), "C": _row("C", parent="R")},
        "recoveries": [_record(1, "R", "w1")],
        "marks": _marks(("R", "w1", 1, True), ("R", "w2", 2, True), ("C", "w2", 1, True)),
    }


def test_a_clean_history_is_accepted() -> None:
    acc = account(**_clean())
    assert acc.problems == []
    assert (acc.completed, acc.recoveries, acc.finishes_not_accepted) == (2, 1, 1)
    assert (acc.duplicates, acc.lost, acc.unexpected) == (0, 0, 0)


def test_a_second_finished_run_without_a_takeover_is_a_duplicate() -> None:
    case = _clean()
    case["recoveries"] = [_record(1, "R", "w3")]  # w1's run was never taken over
    acc = account(**case)
    assert acc.duplicates == 1
    assert any("second completed run" in p for p in acc.problems)
    assert any("without its takeover recorded" in p for p in acc.problems)


def test_two_runs_of_one_attempt_are_a_duplicate() -> None:
    case = _clean()
    case["marks"] += _marks(("C", "w3", 1, False))
    acc = account(**case)
    assert acc.duplicates == 1
    assert any("2 runs started as attempt 1" in p for p in acc.problems)


def test_without_strict_a_requeued_run_may_share_its_attempt_but_not_finish_twice() -> None:
    """A run that met a store outage is requeued uncounted: its re-run has the same attempt."""
    requeued = _clean()
    requeued["marks"] += _marks(("C", "w3", 1, False))
    acc = account(**requeued, strict=False)
    assert (acc.duplicates, acc.problems) == (0, [])

    finished_twice = _clean()
    finished_twice["marks"] += _marks(("C", "w3", 1, True))
    acc = account(**finished_twice, strict=False)
    assert acc.duplicates >= 1
    assert any("2 runs started as attempt 1" in p for p in acc.problems)
    assert any("second completed run" in p for p in acc.problems)


def test_a_lost_child_and_an_unexpected_one_are_counted() -> None:
    lost = _clean()
    del lost["executions"]["C"]
    assert account(**lost).lost == 1
    extra = _clean()
    extra["executions"]["D"] = _row("D", parent="R", i=1)
    assert account(**extra).unexpected == 1


def test_failure_count_must_match_the_recovery_records() -> None:
    case = _clean()
    case["recoveries"] = []
    acc = account(**case)
    assert any("failure_count 1 but 0 recovery records" in p for p in acc.problems)
    unfinished = _clean()
    unfinished["executions"]["C"] = _row("C", parent="R", status="running")
    assert any("ended running" in p for p in account(**unfinished).problems)


def test_a_deeper_plan_is_followed_down_to_each_descendant() -> None:
    planned = {"R": {"children": [{"i": 0, "children": [{"i": 0}]}]}}
    lost = {**_clean(), "root_ids": planned}
    assert account(**lost).lost == 1
    complete = {**lost, "executions": {**lost["executions"], "G": _row("G", parent="C")},
                "marks": lost["marks"] + _marks(("G", "w2", 1, True))}
    acc = account(**complete)
    assert (acc.problems, acc.lost, acc.unexpected, acc.completed) == ([], 0, 0, 3)
    unplanned = _clean()
    unplanned["executions"]["G"] = _row("G", parent="C")
    assert account(**unplanned).unexpected == 1


def test_without_results_naming_runs_the_finished_run_of_the_last_attempt_is_accepted() -> None:
    acc = account(**_clean(), results_name_runs=False)
    assert (acc.problems, acc.duplicates, acc.finishes_not_accepted) == ([], 0, 1)

    finished_twice = _clean()
    finished_twice["marks"] += _marks(("C", "w3", 1, True))
    acc = account(**finished_twice, results_name_runs=False)
    assert acc.duplicates >= 1
    assert any("second completed run" in p for p in acc.problems)

    never_finished = _clean()
    never_finished["marks"] = _marks(("R", "w1", 1, True), ("R", "w2", 2, True),
                                     ("C", "w2", 1, False))
    acc = account(**never_finished, results_name_runs=False)
    assert any("C: no finished run of attempt 1" in p for p in acc.problems)


def test_runs_of_an_execution_not_among_the_executions_are_a_problem() -> None:
    case = _clean()
    case["marks"] += _marks(("X", "w1", 1, True))
    assert any(p.startswith("runs of X") for p in account(**case).problems)
