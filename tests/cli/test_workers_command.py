"""The worker registry on the command line: `workers`, the unserved flows in `stats`, and
`submit` refusing a flow no worker runs (a typo would wait in the queue forever)."""

from __future__ import annotations

from tests.cli.conftest import Cli, assert_one_line_error
from tests.conformance.helpers import create_root, wait_until_past

from flowexec.model.workers import WorkerRegistration
from flowexec.store.protocol import ExecutionStore

NARROW = {"COLUMNS": "80"}
LONG_ID = "worker-on-a-rather-long-host-name.example.internal-123456-abcdef"


def registration(worker_id: str, *flows: str) -> WorkerRegistration:
    return WorkerRegistration(worker_id, "build-host-7", 31337, flows, 16, "0.1.0")


async def test_workers_lists_the_registry_at_80_columns_without_cutting_an_id(
    cli: Cli, store: ExecutionStore
) -> None:
    assert "no workers registered" in (await cli.ok("workers")).stdout
    await store.register_worker(
        registration(LONG_ID, "checkout", "billing.monthly-invoices"), ttl_ms=60_000
    )
    dead = await store.register_worker(registration("short-1", "checkout"), ttl_ms=50)
    await wait_until_past(store, dead.expires_at)

    result = await cli("workers", env=NARROW)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert any(LONG_ID in line for line in lines), result.stdout  # whole, on one line
    assert "short-1" in result.stdout and "31337" in result.stdout
    assert "live" in result.stdout and "dead" in result.stdout
    wide = (await cli("workers", env={"COLUMNS": "160"})).stdout
    assert "last seen" in wide.splitlines()[0] and LONG_ID in wide

    listed = {w["worker_id"]: w for w in await cli.json("workers")}
    assert set(listed) == {LONG_ID, "short-1"}
    assert listed[LONG_ID]["flow_ids"] == ["billing.monthly-invoices", "checkout"]
    assert listed[LONG_ID]["live"] is True and listed["short-1"]["live"] is False
    assert listed[LONG_ID]["concurrency"] == 16 and listed[LONG_ID]["last_seen_age_s"] >= 0


async def test_stats_names_queued_flows_no_live_worker_serves(
    cli: Cli, store: ExecutionStore
) -> None:
    await store.register_worker(registration("w-1", "checkout"), ttl_ms=60_000)
    await create_root(store, flow_id="checkout")
    for _ in range(2):
        await create_root(store, flow_id="chekout")
    stats = await cli.json("stats")
    assert stats["queued_without_live_worker"] == {"chekout": 2}
    assert "no live worker serves chekout: 2 queued" in (await cli.ok("stats")).stdout


async def test_submit_refuses_a_flow_no_worker_runs_unless_forced(
    cli: Cli, store: ExecutionStore
) -> None:
    await store.register_worker(registration("w-1", "checkout", "billing"), ttl_ms=60_000)
    result = await cli("submit", "chekout", "--owner", "x")
    assert_one_line_error(
        result, 1, "no live worker runs flow 'chekout'", "flows workers run: billing, checkout",
        "--force",
    )
    assert await store.get_root_executions("chekout") == []

    forced = await cli.json("submit", "chekout", "--owner", "x", "--force")
    assert forced["execution"]["flow_id"] == "chekout"
    served = await cli.json("submit", "checkout", "--owner", "x")
    assert served["execution"]["status"] == "created"


async def test_submit_accepts_a_flow_served_within_the_last_day(
    cli: Cli, store: ExecutionStore
) -> None:
    await store.register_worker(registration("w-1", "checkout"), ttl_ms=60_000)
    await store.register_worker(registration("w-2", "nightly"), ttl_ms=60_000)
    assert await store.remove_worker("w-2")  # stopped for now; it ran nightly minutes ago
    await cli.ok("submit", "nightly", "--owner", "x")
    refused = await cli("submit", "nightly-typo", "--owner", "x")
    assert refused.exit_code == 1 and "checkout, nightly" in refused.stderr


async def test_submit_with_no_worker_lately_warns_and_accepts(
    cli: Cli, store: ExecutionStore
) -> None:
    result = await cli.ok("submit", "first-flow", "--owner", "x")
    assert "no worker has run any flow in the last 24 h" in result.stderr
    assert len(await store.get_root_executions("first-flow")) == 1


async def test_submit_from_file_refuses_an_unserved_flow_too(
    cli: Cli, store: ExecutionStore
) -> None:
    await store.register_worker(registration("w-1", "checkout"), ttl_ms=60_000)
    result = await cli("submit", "chekout", "--owner", "x", "--from-file", "-")
    assert_one_line_error(result, 1, "no live worker runs flow 'chekout'")
    assert await store.get_root_executions("chekout") == []


async def test_recover_removes_dead_workers_and_says_so(cli: Cli, store: ExecutionStore) -> None:
    dead = await store.register_worker(registration("gone", "checkout"), ttl_ms=50)
    await wait_until_past(store, dead.expires_at)
    report = await cli.json("recover")
    assert report["dead_workers"] == 1
    assert await store.get_workers() == []
    assert "removed 0 dead workers from the registry" in (await cli.ok("recover")).stdout
