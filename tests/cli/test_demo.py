"""`flowexec demo`: the scenario happens, and what it says it did (and left) is true.

The default throwaway database runs in `test_fresh_install.py`, from a freshly installed package.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from tests.cli.conftest import Cli
from typer.testing import CliRunner

from flowexec import demo
from flowexec.cli import app
from flowexec.model import ExecutionStatus, RecoveryReason
from flowexec.store.protocol import ExecutionStore


def demo_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("flowexec-demo-*"))


async def test_demo_on_the_given_database(cli: Cli, store: ExecutionStore) -> None:
    before = demo_dirs()
    result = await cli("demo")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    out = result.stdout
    total = demo.expected_executions()
    summary = next(line for line in out.splitlines() if line.startswith("demo: "))
    assert summary.startswith(f"demo: {total}/{total} executions completed (5 trees, up to 3 ")
    assert "1 retried after a failure; 2 recovered from killed worker demo-doomed" in summary
    for text in ("killed demo-doomed with SIGKILL", "an order that failed once",
                 "recovery history", "executions completed", f"(table prefix {cli.prefix})"):
        assert text in out, text
    assert demo_dirs() == before  # its scratch directory (the killed worker's log) is gone

    orders = await store.get_root_executions(demo.ORDER_FLOW)
    reports = await store.get_root_executions(demo.REPORT_FLOW)
    assert len(orders) == demo.ORDERS and len(reports) == demo.REPORTS
    assert {r.levels for r in orders} == {len(demo.ORDER_FANOUT)}
    assert sum(1 + r.total_nested for r in orders + reports) == total
    for root in orders + reports:
        for node in await store.get_execution_tree(root.execution.id):
            assert node.execution.status is ExecutionStatus.COMPLETED
    flaky = [r.execution for r in orders if r.execution.failure_count]
    assert [e.failure_count for e in flaky] == [1]
    assert flaky[0].last_failure_reason is not None
    assert "payment gateway timed out" in flaky[0].last_failure_reason
    for report in reports:
        [record] = await store.get_recovery_history(report.execution.id)
        assert record.recovery_reason == RecoveryReason.EXPIRED_CLAIM
        assert (record.previous_worker_id, record.recovered_by_worker) == (
            demo.DOOMED_WORKER, demo.RESCUER
        )
        assert report.execution.failure_count == 1
        assert report.execution.result == {"sections": demo.SECTIONS_PER_REPORT, "attempt": 2}
        assert report.total_nested == demo.SECTIONS_PER_REPORT * 2  # re-run made no duplicates
    assert await store.get_active_claims() == []


def test_demo_keep_leaves_the_database_it_names() -> None:
    result = CliRunner().invoke(app, ["demo", "--keep"], env={"FLOWEXEC_DATABASE_URL": None})
    assert result.exit_code == 0, (result.stdout, result.stderr)
    kept = re.search(r"kept the demo's directory (\S+)", result.stdout)
    assert kept is not None, result.stdout
    directory = Path(kept.group(1))
    try:
        assert (directory / "demo.db").exists() and (directory / "doomed-worker.log").exists()
        url = f"sqlite:///{directory / 'demo.db'}"
        assert f"look inside: flowexec --database-url {url} ls demo.order" in result.stdout
        listed = CliRunner().invoke(app, ["--database-url", url, "ls", demo.ORDER_FLOW, "--json"])
        assert listed.exit_code == 0, listed.stderr
        assert len(json.loads(listed.stdout)["executions"]) == demo.ORDERS
    finally:
        shutil.rmtree(directory)


def test_json_demo_prints_one_json_object_and_no_narration() -> None:
    before = demo_dirs()
    result = CliRunner().invoke(app, ["--json", "demo"], env={"FLOWEXEC_DATABASE_URL": None})
    assert result.exit_code == 0, (result.stdout, result.stderr)
    outcome = json.loads(result.stdout)  # the whole of stdout: no progress bar, no tree
    total = demo.expected_executions()
    assert (outcome["total"], outcome["completed"]) == (total, total)
    assert len(outcome["order_roots"]) == demo.ORDERS
    assert outcome["flaky_root"] in outcome["order_roots"]
    assert {r["previous_worker_id"] for r in outcome["recoveries"]} == {demo.DOOMED_WORKER}
    assert outcome["database_url"] is None and outcome["kept_directory"] is None
    assert demo_dirs() == before
