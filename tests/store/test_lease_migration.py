"""Migration `lease_on_execution` moves each claim onto its execution row: a database upgraded
while workers hold live leases keeps every lease (holder, times, epoch, status), the holders go on
heartbeating and complete their runs, and nobody else can take them meanwhile."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg

from flowexec import new_execution
from flowexec.model import ClaimStatus, Completion, ExecutionClaim, ExecutionStatus
from flowexec.store.migrations import load_migrations
from flowexec.store.protocol import ExecutionStore
from flowexec.store.sqlite.codec import to_micros

StoreFactory = Callable[..., Awaitable[ExecutionStore]]

LEASE_MIGRATION = "lease_on_execution"
HOLDER = "worker-before-upgrade"

# What a claim looked like before the migration: a row of its own, and the execution marked.
_CLAIM_ROW = """
    INSERT INTO {p}execution_claims
        (execution_id, worker_id, claimed_at, expires_at, heartbeat_at, status, epoch)
    VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_MARK = """
    UPDATE {p}executions SET status = ?, processing_worker_id = ?, processing_started_at = ?,
        claim_epoch = ?, started_at = ?
    WHERE id = ?
"""


def _write(url: str, prefix: str, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Plain SQL writes in one transaction, as the code before the migration made them."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            with conn:
                for sql, params in statements:
                    conn.execute(sql.replace("{p}", prefix), [
                        to_micros(v) if isinstance(v, datetime) else v for v in params
                    ])
        finally:
            conn.close()
        return
    with psycopg.connect(url) as pg:
        for sql, params in statements:
            pg.execute(sql.replace("{p}", prefix).replace("?", "%s"), params)


async def test_an_upgrade_keeps_live_leases_and_their_holders_finish(
    store_factory: StoreFactory, store_url: str, unique_prefix: str
) -> None:
    store = await store_factory(migrate=False)
    [moving] = [
        m for m in load_migrations(f"flowexec.store.{store.backend}", "x_")
        if m.name.endswith(LEASE_MIGRATION)
    ]
    await store.migrate(target_version=moving.version - 1)
    executions = [new_execution("upgraded", "owner") for _ in range(5)]
    for execution in executions:
        await store.create(execution)
    live, released, lapsed = executions[:3], executions[3], executions[4]
    now = await store.now()
    soon, ago = now + timedelta(minutes=10), now - timedelta(minutes=1)
    planted: dict[str, ExecutionClaim] = {}
    statements: list[tuple[str, tuple[Any, ...]]] = []
    for n, (execution, status, expires_at) in enumerate([
        *[(e, ClaimStatus.ACTIVE, soon) for e in live],
        (released, ClaimStatus.RELEASED, soon),
        (lapsed, ClaimStatus.EXPIRED, ago),
    ]):
        epoch = n + 1  # a different epoch each, so that the move cannot mix them up
        planted[execution.id] = ExecutionClaim(
            execution.id, HOLDER, ago, expires_at, now, status, epoch
        )
        statements.append(
            (_CLAIM_ROW, (execution.id, HOLDER, ago, expires_at, now, status.value, epoch))
        )
        holder = HOLDER if status is ClaimStatus.ACTIVE else None
        statements.append((_MARK, ("running", holder, ago, epoch, ago, execution.id)))
    _write(store_url, unique_prefix, statements)

    assert (await store.migrate())[0] == moving.name

    for execution_id, claim in planted.items():
        assert await store.get_claim_for_execution(execution_id) == claim
    assert sorted(await store.get_active_claims(worker_id=HOLDER), key=lambda c: c.epoch) == [
        planted[e.id] for e in live
    ]
    other = await store_factory()  # a second worker, on the upgraded schema
    for execution in live:
        assert await other.claim_execution(execution.id, "someone-else", 60_000) is None
    assert await other.recover_executions("sweeper") != []  # the released and the lapsed run
    assert {c.execution_id for c in await other.get_active_claims()} == {e.id for e in live}

    # The holder heartbeats its runs under the epochs it was given, then completes them.
    held = [(e.id, planted[e.id].epoch) for e in live]
    assert await store.extend_claims(HOLDER, held, 3_600_000) == {e.id for e in live}
    for execution in live:
        renewed = await store.get_claim_for_execution(execution.id)
        assert renewed is not None and renewed.expires_at > planted[execution.id].expires_at
        assert renewed.heartbeat_at > planted[execution.id].heartbeat_at
    batch = await store.claim_and_start(
        HOLDER, 60_000, limit=0, complete=[Completion(i, epoch) for i, epoch in held]
    )
    assert batch.started == [] and batch.completed == {e.id for e in live}
    for execution in live:
        done = await store.get(execution.id)
        assert done is not None and done.status is ExecutionStatus.COMPLETED
        ended = await store.get_claim_for_execution(execution.id)
        assert ended is not None and ended.status is ClaimStatus.RELEASED
    assert await store.get_active_claims() == []
