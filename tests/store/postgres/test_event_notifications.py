"""Event NOTIFYs go out only for executions someone follows, one per statement
(docs/architecture.md §5): a drain nobody watches pays no NOTIFY at commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import psycopg
from psycopg import sql

from flowexec.model import Completion
from flowexec.store.protocol import ExecutionStore
from tests.conformance.helpers import LONG_LEASE_MS, WORKER, create_root


async def _drain_one(store: ExecutionStore) -> str:
    execution = await create_root(store)
    [started] = (await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=1)).started
    completion = Completion(execution.id, started.claim.epoch, None)
    await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=0, complete=[completion])
    return execution.id


async def _notifications(
    url: str, channel: str, during: Callable[[], Awaitable[str]]
) -> list[str]:
    """The payloads on `channel` while `during` runs, started once LISTEN is in place."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        await during()  # started only now: a task begun earlier could finish before LISTEN
        payloads: list[str] = []
        async for notification in conn.notifies(timeout=0.5):
            payloads.append(notification.payload)
        return payloads


async def test_statements_notify_only_for_followed_executions(
    store: ExecutionStore, postgres_url: str
) -> None:
    channel = f"{store.table_prefix}events"
    unwatched = await _notifications(postgres_url, channel, lambda: _drain_one(store))
    assert unwatched == []

    followed = await create_root(store, start=False)
    await store.wait_for_events(followed.id, 0.01)  # registers the interest, returns at once

    async def drain_with_followed() -> str:
        """One unwatched execution and the followed one, started and completed together."""
        other = await create_root(store)
        await store.start_execution(followed.id)
        batch = await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=2)
        assert {s.execution.id for s in batch.started} == {other.id, followed.id}
        done = [Completion(s.execution.id, s.claim.epoch, None) for s in batch.started]
        await store.claim_and_start(WORKER, LONG_LEASE_MS, limit=0, complete=done)
        return followed.id

    watched = await _notifications(postgres_url, channel, drain_with_followed)
    assert watched == [followed.id, followed.id]  # one per statement, naming only the followed
