"""`max_runs`: a worker stops on its own, gracefully, after starting that many runs."""

from __future__ import annotations

import asyncio

import pytest

from flowexec import App, Client, FlowContext, Worker
from flowexec.errors import ValidationError
from flowexec.model import ExecutionStatus
from flowexec.runtime.settings import WorkerSettings
from flowexec.store.protocol import ExecutionStore
from tests.runtime.helpers import FAST, OWNER

app = App()


@app.flow("recycled.flow")
async def recycled(ctx: FlowContext) -> str:
    return ctx.worker_id


async def test_a_worker_stops_after_max_runs_and_leaves_the_rest_queued(
    store: ExecutionStore,
) -> None:
    client = Client(store)
    ids = [await client.create("recycled.flow", owner_id=OWNER) for _ in range(5)]
    worker = Worker(app, store, **{**FAST, "worker_id": "recycled", "concurrency": 2,
                                   "max_runs": 3})
    await asyncio.wait_for(worker.run(), 15)  # returns by itself

    statuses = await store.get_statuses(ids)
    done = [i for i in ids if statuses[i] is ExecutionStatus.COMPLETED]
    assert len(done) == 3
    assert all(statuses[i] is ExecutionStatus.CREATED for i in ids if i not in done)
    assert await store.get_workers() == []  # it left the registry on the way out


@pytest.mark.parametrize("bad", [0, -1, "3"])
def test_max_runs_must_be_a_positive_count(bad: object) -> None:
    with pytest.raises(ValidationError, match="max_runs"):
        WorkerSettings(max_runs=bad)  # type: ignore[arg-type]
