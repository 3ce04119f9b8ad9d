"""Behind PgBouncer in transaction mode: the store finds the pooler, keeps to what it allows,
and wakes its waiters by NOTIFY on a session URL or else by polling, through restarts."""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from flowexec import App, ExecutionStatus, FlowContext, open_store
from flowexec.errors import ConfigError, StoreUnavailable
from flowexec.store.postgres import PostgresExecutionStore
from flowexec.store.protocol import ExecutionStore
from tests.pgbouncer import HOW_TO_GET, PgBouncer, pgbouncer_program
from tests.runtime.helpers import running_worker, wait_for_status, wait_until

StoreFactory = Callable[..., Awaitable[ExecutionStore]]
FLOW = "pooled"
NEVER_POLL_S = 3600.0
"""A worker poll so long that a start can only come from a wake-up (NOTIFY or the store's
own polling)."""

app = App()


@app.flow(FLOW)
async def pooled(ctx: FlowContext) -> dict[str, Any]:
    await asyncio.sleep(0.05)
    return {"ok": True}


@pytest.fixture
def bouncer(postgres_url: str, tmp_path: Path) -> Iterator[PgBouncer]:
    """A PgBouncer of this test's own, which it may restart."""
    if pgbouncer_program() is None:
        pytest.skip(HOW_TO_GET)
    bouncer = PgBouncer(postgres_url, tmp_path / "pgbouncer")
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
async def migrated(store: ExecutionStore) -> ExecutionStore:
    """The tables (made directly, dropped after the test)."""
    return store


@pytest.fixture
async def open_pooled(
    migrated: ExecutionStore, unique_prefix: str
) -> AsyncIterator[Callable[..., Awaitable[PostgresExecutionStore]]]:
    opened: list[ExecutionStore] = []

    async def opener(url: str, **options: Any) -> PostgresExecutionStore:
        store = await open_store(url, table_prefix=unique_prefix, **options)
        assert isinstance(store, PostgresExecutionStore)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


async def test_through_the_transaction_alias_the_store_finds_the_pooler_and_polls(
    open_pooled: Callable[..., Awaitable[PostgresExecutionStore]],
    bouncer: PgBouncer,
    postgres_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="flowexec.store.postgres"):
        pooled_store = await open_pooled(bouncer.url)
    assert (pooled_store.transaction_pooled, pooled_store.polling) == (True, True)
    said = [r.getMessage() for r in caplog.records if "no LISTEN" in r.getMessage()]
    assert len(said) == 1 and "transaction pooler" in said[0]

    direct = await open_pooled(postgres_url)
    assert (direct.transaction_pooled, direct.polling) == (False, False)
    with_session = await open_pooled(bouncer.url, session_url=bouncer.session_url)
    assert (with_session.transaction_pooled, with_session.polling) == (True, False)


async def test_a_pooler_named_away_is_caught_by_the_listen_self_test(
    open_pooled: Callable[..., Awaitable[PostgresExecutionStore]],
    bouncer: PgBouncer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="flowexec.store.postgres"):
        store = await open_pooled(bouncer.url, pooler="session")
    assert (store.transaction_pooled, store.polling) == (False, True)
    assert any("self-test NOTIFY did not arrive" in r.getMessage() for r in caplog.records)


async def test_the_session_url_comes_from_the_environment(
    open_pooled: Callable[..., Awaitable[PostgresExecutionStore]],
    bouncer: PgBouncer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWEXEC_SESSION_DATABASE_URL", bouncer.session_url)
    store = await open_pooled(bouncer.url)
    assert store.options.session_url == bouncer.session_url and not store.polling


@pytest.mark.parametrize("pooler", ["pgbouncer", "", None, 1])
async def test_a_bad_pooler_option_is_a_config_error(postgres_url: str, pooler: object) -> None:
    with pytest.raises(ConfigError, match="pooler must be one of auto, transaction"):
        await open_store(postgres_url, pooler=pooler)


async def test_timestamps_are_utc_whatever_the_session_time_zone(
    open_pooled: Callable[..., Awaitable[PostgresExecutionStore]], postgres_url: str
) -> None:
    separator = "&" if "?" in postgres_url else "?"
    tokyo = f"{postgres_url}{separator}options={quote('-c TimeZone=Asia/Tokyo')}"
    store = await open_pooled(tokyo)
    now = await store.now()
    assert now.tzinfo is UTC
    client = await app.client(store)
    created = await client.get(await client.create(FLOW, owner_id="o", start=False))
    assert created.created_at.tzinfo is UTC


async def start_latencies(store: ExecutionStore, count: int) -> list[float]:
    """Create → started (the database clock) of `count` executions, one after another."""
    client = await app.client(store)
    latencies = []
    for _ in range(count):
        done = await wait_for_status(
            client, await client.create(FLOW, owner_id="o"), ExecutionStatus.COMPLETED
        )
        assert done.started_at is not None
        latencies.append((done.started_at - done.created_at).total_seconds())
    return latencies


@pytest.mark.parametrize("session", [False, True], ids=["polling", "session-url"])
async def test_workers_wake_through_the_pooler(
    open_pooled: Callable[..., Awaitable[PostgresExecutionStore]],
    bouncer: PgBouncer,
    session: bool,
) -> None:
    store = await open_pooled(bouncer.url, session_url=bouncer.session_url if session else None)
    assert store.polling is not session
    creator = await open_pooled(bouncer.url)  # its own store: no wake-up inside one process
    async with running_worker(app, store, poll_interval_s=NEVER_POLL_S):
        latencies = await start_latencies(creator, 100 if session else 20)
    p99 = statistics.quantiles(latencies, n=100)[98]
    how = "NOTIFY on the session alias" if session else "polling"
    print(
        f"\ncreate -> start through PgBouncer ({how}): "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )


async def test_a_pgbouncer_restart_mid_run_leaves_nothing_stuck(
    open_pooled: Callable[..., Awaitable[PostgresExecutionStore]], bouncer: PgBouncer
) -> None:
    store = await open_pooled(bouncer.url, session_url=bouncer.session_url)
    client = await app.client(await open_pooled(bouncer.url))
    # A run whose final write met the restart is left to its lease and the recovery sweep,
    # which requeues it with a backoff: the worker's own poll (PostgreSQL's default) finds it.
    async with running_worker(
        app, store, poll_interval_s=1.0, claim_timeout_ms=1_000, recovery=True,
        recovery_interval_s=0.5,
    ):
        first = [await client.create(FLOW, owner_id="o") for _ in range(20)]
        await asyncio.to_thread(bouncer.restart)  # every connection, the listener's too
        second: list[str] = []
        for _ in range(20):
            try:
                second.append(await client.create(FLOW, owner_id="o"))
            except StoreUnavailable:  # a pooled connection the restart killed, found dead
                await asyncio.sleep(0.1)

        async def all_completed() -> bool:
            statuses = await store.get_statuses([*first, *second])
            return set(statuses.values()) == {ExecutionStatus.COMPLETED}

        try:
            await wait_until(all_completed, within=15, what="every execution to complete")
        except AssertionError:
            st = await store.get_statuses([*first, *second])
            print("STUCK", {k: v for k, v in st.items() if v != ExecutionStatus.COMPLETED})
            for k, v in st.items():
                if v != ExecutionStatus.COMPLETED:
                    print("EXEC", await store.get(k))
                    print("CLAIM", await store.get_claim_for_execution(k))
            raise
    assert len(second) > 0
