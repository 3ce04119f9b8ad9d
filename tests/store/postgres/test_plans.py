"""The hot statements use their indexes, on the first (custom) plan and on generic plans.

psycopg prepares a statement after a few runs, and PostgreSQL may then switch to a generic
plan (docs/architecture.md §10). Each statement is planned both ways here, over a table where
finished executions far outnumber live ones, as in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from flowexec.store.postgres import queries as Q
from flowexec.store.postgres import scheduling_queries as SQ
from flowexec.store.postgres.queue_stats import QUEUE_STATS
from flowexec.store.postgres.status_listing import ROOTS_IN_STATUS
from flowexec.store.protocol import ExecutionStore

FINISHED = 20_000
LIVE = 4_000  # half queued, half running under a live lease


def _index_names(plan: Any) -> Iterator[tuple[str, str | None, str | None]]:
    """(node type, relation, index) for every node of an EXPLAIN (FORMAT JSON) plan."""
    if isinstance(plan, dict):
        if "Node Type" in plan:
            yield plan["Node Type"], plan.get("Relation Name"), plan.get("Index Name")
        for value in plan.values():
            yield from _index_names(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from _index_names(item)


def _positional(template: str, prefix: str) -> tuple[str, list[str]]:
    """`%(name)s` placeholders to `$n`, for PREPARE."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", number, template.replace("{p}", prefix)), names


def plans(url: str, prefix: str, template: str, params: dict[str, Any],
          types: dict[str, str]) -> dict[str, list[tuple[str, str | None, str | None]]]:
    statement = template.replace("{p}", prefix)
    with psycopg.connect(url, autocommit=True) as conn:
        custom = conn.execute(f"EXPLAIN (FORMAT JSON) {statement}", params).fetchone()
        assert custom is not None
        positional, names = _positional(template, prefix)
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(
            f"PREPARE hot ({', '.join(types[n] for n in names)}) AS {positional}"
        )
        with psycopg.ClientCursor(conn) as cur:
            cur.execute(
                f"EXPLAIN (FORMAT JSON) EXECUTE hot ({', '.join(['%s'] * len(names))})",
                [params[n] for n in names],
            )
            generic = cur.fetchone()
        assert generic is not None
    return {"custom": list(_index_names(custom[0])), "generic": list(_index_names(generic[0]))}


@pytest.fixture
async def loaded(store: ExecutionStore, postgres_url: str) -> str:
    """Many finished trees, a queue, and running executions with live leases; analysed."""
    p = store.table_prefix
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"""INSERT INTO {p}executions (id, flow_id, owner_id, root_execution_id, status,
                    created_at, updated_at, completed_at, available_at)
                SELECT 'done' || g, 'flow', 'owner', 'done' || g, 'completed',
                       now() - g * interval '1 second', now(), now(), now()
                FROM generate_series(1, {FINISHED}) g""",
        )
        conn.execute(
            f"""INSERT INTO {p}executions (id, flow_id, owner_id, root_execution_id, status,
                    created_at, updated_at, available_at)
                SELECT 'live' || g, 'flow', 'owner', 'live' || g,
                       CASE WHEN g % 2 = 0 THEN 'created' ELSE 'running' END,
                       now(), now(), now()
                FROM generate_series(1, {LIVE}) g""",
        )
        conn.execute(  # priorities in use: a third of the queue is urgent
            f"UPDATE {p}executions SET priority = (substr(id, 5)::int % 3) - 1"
            " WHERE status = 'created'",
        )
        conn.execute(  # live leases on the running ones, as a busy installation has
            f"""UPDATE {p}executions SET lease_worker_id = 'w', lease_claimed_at = now(),
                    lease_expires_at = now() + interval '1 hour', lease_heartbeat_at = now(),
                    lease_status = 'active', claim_epoch = 1
                WHERE status = 'running'""",
        )
        for table in ("executions", "execution_recovery"):
            conn.execute(f"ANALYZE {p}{table}")
    return p


def assert_uses(found: dict[str, list[tuple[str, str | None, str | None]]], prefix: str,
                index: str) -> None:
    for kind, nodes in found.items():
        indexes = {name for _, _, name in nodes if name}
        assert f"{prefix}{index}" in indexes, f"{kind} plan does not use {index}: {nodes}"
        seq_scans = [n for n in nodes if n[0] == "Seq Scan" and n[1] == f"{prefix}executions"]
        assert not seq_scans, f"{kind} plan scans the whole executions table: {nodes}"


def test_claim_next_uses_the_runnable_index(loaded: str, postgres_url: str) -> None:
    found = plans(
        postgres_url, loaded, Q.CLAIM_BATCH,
        {"worker_id": "w", "timeout_ms": 30_000, "limit": 10},
        {"worker_id": "text", "timeout_ms": "integer", "limit": "integer"},
    )
    assert_uses(found, loaded, "executions_runnable")
    for kind, nodes in found.items():
        # The root may sort the claimed rows (at most `limit`) back into the order picked.
        sorts = [n for n in nodes[1:] if n[0] in ("Sort", "Incremental Sort")]
        assert not sorts, f"{kind} plan sorts the queue instead of reading it in order: {nodes}"


CLAIM_AND_START_TYPES = {
    "worker_id": "text", "timeout_ms": "integer", "limit": "integer", "most": "integer",
    "flow_ids": "text[]", "done_ids": "text[]", "done_epochs": "bigint[]",
    "done_results": "text[]", "completed_event": "text", "started_event": "text",
    "events_channel": "text", "limit_flows": "text[]", "limit_counts": "integer[]",
}


@pytest.mark.parametrize(
    ("statement", "flow_ids"),
    [
        (Q.CLAIM_AND_START, None),
        (Q.CLAIM_AND_START_FOR_FLOWS, ["flow", "other"]),
        (SQ.CLAIM_AND_START_LIMITED, None),
        (SQ.CLAIM_AND_START_LIMITED_FOR_FLOWS, ["flow", "other"]),
    ],
    ids=["all flows", "for flows", "within limits", "for flows within limits"],
)
def test_claim_and_start_uses_the_runnable_index_and_the_primary_key(
    loaded: str, postgres_url: str, statement: str, flow_ids: list[str] | None
) -> None:
    """Completing a worker's runs goes by primary key; claiming, as claim_next does."""
    done_ids = [f"live{g}" for g in range(1, 20, 2)]  # running ones
    params: dict[str, Any] = {
        "worker_id": "w", "timeout_ms": 30_000, "limit": 10, "most": 10 + len(done_ids),
        "done_ids": done_ids, "done_epochs": [1] * len(done_ids),
        "done_results": ['{"ok": true}'] * len(done_ids),
        "completed_event": '{"type": "flow:completed", "data": {}}',
        "started_event": '{"type": "flow:started", "data": {}}', "events_channel": "plans",
    }
    if flow_ids is not None:
        params["flow_ids"] = flow_ids
    limited = "limit_flows" in statement
    if limited:
        params.update(limit_flows=["flow"], limit_counts=[3000])
    found = plans(postgres_url, loaded, statement, params, CLAIM_AND_START_TYPES)
    assert_uses(found, loaded, "executions_runnable")
    if limited:
        assert_uses(found, loaded, "executions_running_flow")
    for kind, nodes in found.items():
        by_key = [n for n in nodes if n[2] == f"{loaded}executions_pkey"]
        assert len(by_key) >= 2, (
            f"{kind} plan does not complete and mark by primary key: {nodes}"
        )


def test_heartbeats_go_by_primary_key(loaded: str, postgres_url: str) -> None:
    found = plans(
        postgres_url, loaded, Q.EXTEND,
        {"worker_id": "w", "timeout_ms": 30_000, "ids": ["live1", "live3"], "epochs": [1, 1]},
        {"worker_id": "text", "timeout_ms": "integer", "ids": "text[]", "epochs": "bigint[]"},
    )
    assert_uses(found, loaded, "executions_pkey")


@pytest.mark.parametrize("statement", [Q.ACTIVE_CLAIMS, Q.EXPIRE_CLAIMS],
                         ids=["active claims", "expire claims"])
def test_live_leases_are_read_from_the_leased_index(
    loaded: str, postgres_url: str, statement: str
) -> None:
    statement = statement.replace("now()", "now() + %(ahead)s")  # PREPARE needs a parameter
    found = plans(postgres_url, loaded, statement, {"ahead": "0s"}, {"ahead": "interval"})
    assert_uses(found, loaded, "executions_leased")


def test_recovery_sweep_uses_the_recoverable_index(loaded: str, postgres_url: str) -> None:
    found = plans(postgres_url, loaded, Q.RECOVERY_VICTIMS, {"limit": 100}, {"limit": "integer"})
    assert_uses(found, loaded, "executions_recoverable")


def test_root_listing_uses_the_roots_index(loaded: str, postgres_url: str) -> None:
    found = plans(
        postgres_url, loaded, Q.ROOT_PAGE[(True, False, False)],
        {"flow_id": "flow", "limit": 50, "after_created": datetime.now(UTC), "after_id": ""},
        {"flow_id": "text", "limit": "integer", "after_created": "timestamptz",
         "after_id": "text"},
    )
    assert_uses(found, loaded, "executions_roots")
    for kind, nodes in found.items():
        assert any(name == f"{loaded}executions_tree" for _, _, name in nodes), (
            f"{kind} plan computes the page's aggregates without the tree index: {nodes}"
        )


def test_queue_stats_read_only_the_partial_indexes(loaded: str, postgres_url: str) -> None:
    """A scrape's figures come from unfinished executions alone; the statement has no
    parameters, so its generic plan is its custom one."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute(
            f"EXPLAIN (FORMAT JSON) {QUEUE_STATS.replace('{p}', loaded)}"
        ).fetchone()
    assert row is not None
    found = {"custom": list(_index_names(row[0]))}
    assert_uses(found, loaded, "executions_runnable")
    assert_uses(found, loaded, "executions_recoverable")
def test_roots_by_status_use_their_index(loaded: str, postgres_url: str) -> None:
    found = plans(
        postgres_url, loaded, ROOTS_IN_STATUS[(True, False)],
        {"status": "failed", "limit": 50, "after_created": datetime.now(UTC), "after_id": ""},
        {"status": "text", "limit": "integer", "after_created": "timestamptz",
         "after_id": "text"},
    )
    assert_uses(found, loaded, "executions_roots_by_status")


def test_retention_walks_finished_roots_by_age(loaded: str, postgres_url: str) -> None:
    """Whichever statuses it keeps, a purge reads finished roots by age, not by status."""
    found = plans(
        postgres_url, loaded, Q.PURGE,
        {"before": datetime.now(UTC), "statuses": ["failed", "completed"], "limit": 100},
        {"before": "timestamptz", "statuses": "text[]", "limit": "integer"},
    )
    for kind, nodes in found.items():  # (the delete's own join is another matter)
        indexes = {name for _, _, name in nodes if name}
        assert f"{loaded}executions_finished_roots" in indexes, (kind, nodes)
        assert f"{loaded}executions_roots_by_status" not in indexes, (kind, nodes)
