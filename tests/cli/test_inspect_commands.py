"""`ls`, `show`, `tree`, `claims`, `stats`, `migrate` through the real command: human and JSON."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.cli.conftest import Cli, assert_one_line_error
from tests.conformance.helpers import (
    FLOW,
    OTHER_FLOW,
    build_root,
    claim,
    create_child,
    create_root,
    set_status,
    start_running,
)

from flowexec.cli.inspect_commands import SHOWN_CHILDREN
from flowexec.model import ExecutionStatus
from flowexec.store.migrations import load_migrations
from flowexec.store.protocol import ExecutionStore

S = ExecutionStatus
BASE = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


async def test_migrate_applies_once_then_reports_up_to_date(cli: Cli) -> None:
    fresh = Cli(cli.url, cli.prefix + "m_")  # under the test prefix, so dropped afterwards
    first = await fresh.json("migrate")
    backend = "postgres" if cli.url.startswith("postgres") else "sqlite"
    every = load_migrations(f"flowexec.store.{backend}", fresh.prefix)
    assert first["applied"] == [m.name for m in every]
    assert first["table_prefix"] == fresh.prefix
    again = await fresh.ok("migrate")
    assert "up to date; nothing applied" in again.stdout
    assert (await fresh.json("stats"))["total"] == 0


async def test_ls_pages_through_identical_timestamps_without_gaps_or_duplicates(
    cli: Cli, store: ExecutionStore
) -> None:
    roots = [build_root(created_at=BASE + timedelta(seconds=i // 4)) for i in range(23)]
    for root in roots:
        await store.create(root)
    await store.create(build_root(flow_id=OTHER_FLOW, created_at=BASE))
    expected = [r.id for r in sorted(roots, key=lambda r: (r.created_at, r.id), reverse=True)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        args = ["ls", FLOW, "--limit", "5"] + ([] if cursor is None else ["--after", cursor])
        page = await cli.json(*args)
        pages += 1
        seen += [row["id"] for row in page["executions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 5  # 23 rows: four full pages and one of three, and no empty last page


async def test_ls_human_output_prints_the_next_cursor_and_aggregates(
    cli: Cli, store: ExecutionStore
) -> None:
    older = await create_root(store, created_at=BASE)
    newer = await create_root(store, created_at=BASE + timedelta(seconds=1))
    child = await create_child(store, newer)
    await create_child(store, child)

    first = await cli.ok("ls", FLOW, "--limit", "1")
    assert newer.id in first.stdout and older.id not in first.stdout
    line = next(x for x in first.stdout.splitlines() if "next page: --after " in x)
    cursor = line.split("--after ", 1)[1].strip()
    row = next(x for x in first.stdout.splitlines() if newer.id in x)
    assert row.split()[-2:] == ["2", "2"]  # levels, nested

    second = await cli.ok("ls", FLOW, "--limit", "1", "--after", cursor)
    assert older.id in second.stdout and "no more pages" in second.stdout


async def test_ls_filters_by_owner_and_reports_levels(cli: Cli, store: ExecutionStore) -> None:
    mine = await create_root(store, owner_id="alice")
    await create_root(store, owner_id="bob")
    await create_child(store, mine)
    page = await cli.json("ls", FLOW, "--owner", "alice")
    assert [(r["id"], r["owner_id"], r["levels"], r["total_nested"]) for r in page["executions"]] \
        == [(mine.id, "alice", 1, 1)]
    assert page["next_cursor"] is None
    empty = await cli.ok("ls", "no-such-flow")
    assert "no root executions of flow no-such-flow" in empty.stdout


async def test_ls_refuses_a_cursor_it_did_not_print(cli: Cli, store: ExecutionStore) -> None:
    await create_root(store)
    await create_root(store)
    page = await cli.json("ls", FLOW, "--limit", "1")
    assert_one_line_error(
        await cli("ls", OTHER_FLOW, "--after", page["next_cursor"]), 2,
        f"cursor for flow {FLOW!r}",
    )
    assert_one_line_error(
        await cli("ls", FLOW, "--after", "not-a-cursor"), 2, "not a cursor printed by"
    )


async def test_show_prints_every_field_claim_and_recovery_history(
    cli: Cli, store: ExecutionStore
) -> None:
    execution, lease = await start_running(
        store, options={"debug": True, "breakpoints": ["b"]}, integration={"crm": 7},
        external_events=[{"event_name": "signup", "payload": {"n": 1}}],
    )
    child = await create_child(store, execution)
    await store.record_recovery(
        execution.id, "sweeper-1", "expired_claim", "running", "dead-worker"
    )

    shown = await cli.json("show", execution.id)
    fields = shown["execution"]
    assert fields["id"] == execution.id and fields["status"] == "running"
    assert fields["options"] == {"debug": True, "breakpoints": ["b"]}
    assert fields["integration"] == {"crm": 7}
    assert fields["external_events"] == [{"event_name": "signup", "payload": {"n": 1}}]
    assert fields["processing_worker_id"] == lease.worker_id
    assert datetime.fromisoformat(fields["created_at"]).tzinfo is not None
    assert isinstance(fields["duration_ms"], int)
    assert shown["claim"]["worker_id"] == lease.worker_id
    assert shown["claim"]["epoch"] == lease.epoch and shown["claim"]["status"] == "active"
    [record] = shown["recovery_history"]
    assert record["recovery_reason"] == "expired_claim"
    assert record["previous_worker_id"] == "dead-worker"
    assert shown["children"] == [child.id] and shown["more_children"] is False

    human = (await cli.ok("show", execution.id)).stdout
    for text in (execution.id, "running", "processing_worker_id", f"epoch {lease.epoch}",
                 "recovery history", "dead-worker", "sweeper-1", '"crm": 7'):
        assert text in human, text


async def test_show_without_claim_or_history(cli: Cli, store: ExecutionStore) -> None:
    execution = await create_root(store, start=False)
    shown = await cli.json("show", execution.id)
    assert shown["claim"] is None and shown["recovery_history"] == []
    assert shown["execution"]["available_at"] is None
    human = (await cli.ok("show", execution.id)).stdout
    assert "claim: none" in human and "recovery history: none" in human


async def test_show_lists_a_bounded_number_of_children(cli: Cli, store: ExecutionStore) -> None:
    parent = await create_root(store)
    children = [await create_child(store, parent) for _ in range(SHOWN_CHILDREN + 1)]
    await create_child(store, children[0])  # a grandchild is not a child
    shown = await cli.json("show", parent.id)
    assert shown["children"] == sorted(c.id for c in children)[:SHOWN_CHILDREN]
    assert shown["more_children"] is True
    human = (await cli.ok("show", parent.id)).stdout
    assert re.search(rf"children\s+{SHOWN_CHILDREN}\+", human), human


async def test_tree_nests_children_with_status_and_duration(
    cli: Cli, store: ExecutionStore
) -> None:
    root = await create_root(store)
    left = await create_child(
        store, root, external_events=[{"event_name": "left", "payload": None}]
    )
    right = await create_child(store, root)
    grandchild = await create_child(store, left)
    for done in (grandchild, right):
        await set_status(store, done.id, S.RUNNING)
        await set_status(store, done.id, S.COMPLETED)
    await set_status(store, left.id, S.RUNNING)
    await set_status(store, left.id, S.FAILED, error_message="boom", error_node_id="n1")

    tree = await cli.json("tree", root.id)
    assert tree["truncated"] is False
    top = tree["tree"]
    assert top["id"] == root.id and top["status"] == "created" and top["level"] == 0
    by_id = {c["id"]: c for c in top["children"]}
    assert set(by_id) == {left.id, right.id}
    assert [g["id"] for g in by_id[left.id]["children"]] == [grandchild.id]
    assert by_id[left.id]["status"] == "failed" and by_id[left.id]["error_node_id"] == "n1"
    assert by_id[right.id]["duration_ms"] >= 0

    subtree = await cli.json("tree", left.id)
    assert subtree["tree"]["id"] == left.id
    assert [c["id"] for c in subtree["tree"]["children"]] == [grandchild.id]

    human = (await cli.ok("tree", root.id)).stdout
    lines = human.splitlines()
    assert root.id in lines[0]
    failed_line = next(x for x in lines if left.id in x)
    for text in ("failed", "on left", "error at n1: boom"):
        assert text in failed_line
    grandchild_line = next(x for x in lines if grandchild.id in x)
    assert grandchild_line.index(grandchild.id) > failed_line.index(left.id)  # indented deeper

    truncated = await cli.json("tree", root.id, "--max-nodes", "2")
    assert truncated["truncated"] is True


async def test_claims_lists_live_leases_per_worker(cli: Cli, store: ExecutionStore) -> None:
    first, _ = await start_running(store, worker_id="w-one")
    second = await create_root(store)
    lease = await claim(store, second.id, "w-two")
    await create_root(store)  # queued, not claimed

    every = await cli.json("claims")
    assert {(c["execution_id"], c["worker_id"]) for c in every["claims"]} == {
        (first.id, "w-one"), (second.id, "w-two")
    }
    only = await cli.json("claims", "--worker", "w-two")
    assert [(c["execution_id"], c["epoch"]) for c in only["claims"]] == [(second.id, lease.epoch)]
    human = (await cli.ok("claims")).stdout
    assert "w-one" in human and "w-two" in human and "2 active claims" in human
    nobody = await cli.ok("claims", "--worker", "nobody")
    assert "no active claims for worker nobody" in nobody.stdout


async def test_stats_counts_by_status(cli: Cli, store: ExecutionStore) -> None:
    await start_running(store)
    queued = await create_root(store)
    done = await create_root(store)
    await set_status(store, done.id, S.RUNNING)
    await set_status(store, done.id, S.COMPLETED)
    await store.record_recovery(done.id, "sweeper", "expired_claim", "running", "gone")

    stats = await cli.json("stats")
    assert stats["counts_by_status"] == {"running": 1, "created": 1, "completed": 1}
    assert stats["total"] == 3 and stats["active_claims"] == 1
    assert stats["recoveries_last_hour"] == 1
    assert stats["oldest_queued_age_s"] >= 0
    assert datetime.fromisoformat(stats["oldest_queued_at"]) >= queued.created_at - timedelta(1)
    human = (await cli.ok("--json", "stats")).stdout  # the global flag works too
    assert '"active_claims": 1' in human
    table = (await cli.ok("stats")).stdout
    assert "completed" in table and "recoveries (1h)" in table
