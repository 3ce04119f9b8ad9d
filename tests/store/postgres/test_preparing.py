"""Server-side prepared statements: the hot ones at their first run, and none at all when the
store's switch is off (as behind PgBouncer in transaction mode)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flowexec import new_execution
from flowexec.store.postgres import PostgresExecutionStore
from flowexec.store.protocol import ExecutionStore

StoreFactory = Callable[..., Awaitable[ExecutionStore]]


async def _prepared_after_a_heartbeat(store: ExecutionStore) -> list[str]:
    assert isinstance(store, PostgresExecutionStore)
    await store.create(new_execution("prep", "owner"))
    [claim] = await store.claim_next("worker", 60_000)
    assert await store.extend_claims("worker", [(claim.execution_id, claim.epoch)], 60_000)
    rows = await store._rows("SELECT statement FROM pg_prepared_statements")
    return [str(r["statement"]) for r in rows]


async def test_a_heartbeat_is_prepared_at_its_first_run(store_factory: StoreFactory) -> None:
    store = await store_factory(pool_min_size=1, pool_max_size=1)
    prepared = await _prepared_after_a_heartbeat(store)
    assert [s for s in prepared if "lease_heartbeat_at = now()" in s]


async def test_nothing_is_prepared_when_the_switch_is_off(store_factory: StoreFactory) -> None:
    store = await store_factory(pool_min_size=1, pool_max_size=1)
    assert isinstance(store, PostgresExecutionStore)
    store._prepare = False
    for _ in range(10):  # past psycopg's threshold of five
        assert await _prepared_after_a_heartbeat(store) == []
