"""The worker runs its app's scheduler: a missed slot is filled and run, priorities and
delays reach the queue through the client."""

from __future__ import annotations

from datetime import timedelta

from flowexec import App, FlowContext
from flowexec.model import new_execution
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, running_worker, wait_until

TICK = "tick"


def ticking_app() -> App:
    app = App()

    @app.flow(TICK)
    async def tick(ctx: FlowContext) -> str:
        return "ticked"

    app.schedule("* * * * *", flow_id=TICK, schedule_id="minutely")
    return app


async def test_a_worker_fills_the_latest_missed_slot_and_runs_it(store: ExecutionStore) -> None:
    now = await store.now()
    an_hour_ago = now.replace(second=0, microsecond=0) - timedelta(hours=1)
    assert await store.fill_schedule_slot("minutely", an_hour_ago, new_execution(TICK, OWNER))

    async def two_completed() -> bool:
        stats = await store.get_stats()
        return stats.counts_by_status.get("completed", 0) == 2

    async with running_worker(ticking_app(), store):
        await wait_until(two_completed, what="the missed slot's execution to run")
    last = (await store.get_last_slots(["minutely"]))["minutely"]
    assert now - timedelta(minutes=1) <= last.slot_at <= await store.now()
    assert len(await store.get_root_executions(TICK)) == 2


async def test_delays_and_priorities_through_the_client(store: ExecutionStore) -> None:
    client = await ticking_app().client(store)
    later = await client.create(TICK, owner_id=OWNER, delay=3600)
    urgent = await client.create(TICK, owner_id=OWNER, priority=-5)
    delayed = await client.get(later)
    assert delayed.available_at is not None
    assert delayed.available_at - await store.now() > timedelta(minutes=59)
    [claim] = await store.claim_next("w", 60_000, limit=5)
    assert claim.execution_id == urgent
    ids = await client.create_many(
        TICK, [{"owner_id": OWNER, "idempotency_key": "k", "delay": 5}] * 2
    )
    assert ids[0] == ids[1] == await client.create(TICK, owner_id=OWNER, idempotency_key="k")
