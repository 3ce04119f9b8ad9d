"""PostgreSQL refusing connections for 10 s and for 20 s, shorter than the 30 s lease: runs
that were busy keep running and keep their leases (a heartbeat succeeds before expiry), none
is cancelled or run twice, and the workers are claiming again within 2 s of the server
answering. The server is the test's own, stopped and started again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowexec import App, Client, ExecutionStatus, FlowContext, StoreUnavailable, Worker, open_store
from tests.recovery.test_database_outages import OwnServer

LEASE_MS = 30_000
WORKERS = 2
CONCURRENCY = 4
BUSY_RUNS = 6
CLAIMING_AGAIN_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnServer]:
    server = OwnServer(tmp_path_factory.mktemp("outage-server"))
    try:
        yield server
    finally:
        server.cleanup()


def _app(started: list[tuple[str, float]], busy_s: float) -> App:
    app = App()

    @app.flow("busy", max_retries=0)
    async def busy(ctx: FlowContext) -> str:
        started.append((ctx.execution_id, time.monotonic()))
        await asyncio.sleep(busy_s)
        return "done"

    @app.flow("probe", max_retries=0)
    async def probe(ctx: FlowContext) -> str:
        started.append((ctx.execution_id, time.monotonic()))
        return "done"

    return app


async def _create_when_answering(client: Client) -> str:
    """The client's own pool may hand out one connection the restart killed."""
    while True:
        try:
            return await client.create("probe", owner_id="outage")
        except StoreUnavailable:
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("outage_s", [10, 20])
async def test_workers_ride_out_an_outage_shorter_than_the_lease(
    own_server: OwnServer,
    unique_prefix: str,
    outage_s: int,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.WARNING)
    started: list[tuple[str, float]] = []
    app = _app(started, busy_s=outage_s + 8)
    url = own_server.url
    async with await open_store(url, table_prefix=unique_prefix) as store:
        client = await app.client(store)
        workers = [
            Worker(
                app, url, table_prefix=unique_prefix, worker_id=f"outage-{n}",
                concurrency=CONCURRENCY, claim_timeout_ms=LEASE_MS, shutdown_grace_s=5.0,
                install_signal_handlers=False,
            )
            for n in range(WORKERS)
        ]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            busy = [await client.create("busy", owner_id="outage") for _ in range(BUSY_RUNS)]
            while len(started) < BUSY_RUNS:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(own_server.stop)
            await asyncio.sleep(outage_s)
            await asyncio.to_thread(own_server.start)
            up_at = time.monotonic()
            probe = await _create_when_answering(client)
            probed = await client.wait(probe, timeout=30)
            probe_started_at = dict(started)[probe]
            done = [await client.wait(e, timeout=60) for e in busy]
            recoveries = [r for e in busy for r in await store.get_recovery_history(e)]
        finally:
            for worker in workers:
                worker.stop()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)

    claiming_again_s = probe_started_at - up_at
    cancelled = [r.getMessage() for r in caplog.records if "run cancelled" in r.getMessage()]
    print(
        f"\noutage {outage_s} s: probe started {claiming_again_s:.2f} s after the server "
        f"answered; {len(caplog.records)} warnings"
    )
    assert probed.status is ExecutionStatus.COMPLETED
    assert claiming_again_s < CLAIMING_AGAIN_WITHIN_S
    assert [d.status for d in done] == [ExecutionStatus.COMPLETED] * BUSY_RUNS, [
        (d.status, d.error_message, d.last_failure_reason) for d in done
    ]
    assert [d.failure_count for d in done] == [0] * BUSY_RUNS
    assert Counter(e for e, _ in started if e in busy) == dict.fromkeys(busy, 1)
    assert recoveries == []
    assert cancelled == []
