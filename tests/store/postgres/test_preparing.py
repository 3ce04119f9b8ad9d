"""Server-side prepared statements: a Worker's heartbeat is prepared after psycopg's five
unprepared runs and then runs on one generic plan, not planned again on every call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flowexec import new_execution
from flowexec.store.postgres import PostgresExecutionStore
from flowexec.store.protocol import ExecutionStore

StoreFactory = Callable[..., Awaitable[ExecutionStore]]
HEARTBEATS = 15  # psycopg's five unprepared runs, PostgreSQL's five custom plans, and more


async def _heartbeat_plans(store: ExecutionStore) -> list[tuple[str, int, int]]:
    """(statement, generic plans, custom plans) of what the connection prepared, after
    `HEARTBEATS` heartbeats of one lease."""
    assert isinstance(store, PostgresExecutionStore)
    await store.create(new_execution("prep", "owner"))
    [claim] = await store.claim_next("worker", 60_000)
    for _ in range(HEARTBEATS):
        assert await store.extend_claims("worker", [(claim.execution_id, claim.epoch)], 60_000)
    rows = await store._rows(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
    )
    return [(str(r["statement"]), int(r["generic_plans"]), int(r["custom_plans"])) for r in rows]


async def test_a_heartbeat_runs_on_a_generic_plan(store_factory: StoreFactory) -> None:
    store = await store_factory(pool_min_size=1, pool_max_size=1)
    [(_, generic, custom)] = [
        p for p in await _heartbeat_plans(store) if "lease_heartbeat_at = now()" in p[0]
    ]
    assert custom == 5 and generic == HEARTBEATS - 10
