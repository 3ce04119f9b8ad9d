"""`flowexec worker --metrics-port`: a real worker process, scraped over real HTTP while its
executions run, on both backends."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowexec.runtime import Client
from flowexec.store.protocol import ExecutionStore
from tests.cli.conftest import Cli
from tests.metrics import metrics_app
from tests.metrics.scraping import Samples, sample, scrape, scrape_until

REPO = Path(__file__).resolve().parents[2]
APP = "tests.metrics.metrics_app:app"


@pytest.fixture
def worker_process(
    cli: Cli, tmp_path: Path, unused_tcp_port: int
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A `flowexec worker` with metrics on a free loopback port; gone after the test."""
    port = unused_tcp_port
    log = tmp_path / "worker.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flowexec", *cli.global_args(), "worker", "--app", APP,
             "--concurrency", "4", "--metrics-port", str(port), "--metrics-host", "127.0.0.1"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    yield process, port, log
    if process.poll() is None:
        process.kill()
        process.wait(10)


def counter(samples: Samples, what: str, flow_id: str) -> float:
    return sample(samples, f"flowexec_executions_{what}_total", flow_id=flow_id) or 0.0


async def test_counters_move_as_executions_run(
    store: ExecutionStore, worker_process: tuple[subprocess.Popen[bytes], int, Path]
) -> None:
    process, port, log = worker_process

    async def alive() -> str | None:
        return None if process.poll() is None else f"the worker exited:\n{log.read_text()}"

    # Before any work: every flow of the app is there at 0, the queue is empty.
    before = await scrape_until(
        port, lambda s: sample(s, "flowexec_queue_stats_up") == 1.0, alive=alive
    )
    for flow_id in (metrics_app.OK, metrics_app.REFUSED, metrics_app.FLAKY):
        assert counter(before, "started", flow_id) == 0.0
        assert sample(before, "flowexec_queue_depth", flow_id=flow_id) == 0.0
    assert sample(before, "flowexec_active_claims") == 0.0

    client = Client(store)
    for _ in range(3):
        await client.create(metrics_app.OK, owner_id="o")
    await client.create(metrics_app.REFUSED, owner_id="o")
    await client.create(metrics_app.FLAKY, owner_id="o")
    for _ in range(2):
        await client.create(metrics_app.IDLE, owner_id="o")

    def settled(s: Samples) -> bool:
        return (
            counter(s, "completed", metrics_app.OK) == 3
            and counter(s, "failed", metrics_app.REFUSED) == 1
            and counter(s, "completed", metrics_app.FLAKY) == 1
            and sample(s, "flowexec_queue_depth", flow_id=metrics_app.IDLE) == 2
        )

    after = await scrape_until(port, settled, alive=alive)
    assert counter(after, "started", metrics_app.OK) == 3
    assert counter(after, "started", metrics_app.FLAKY) == 2  # two attempts
    assert counter(after, "retried", metrics_app.FLAKY) == 1
    assert counter(after, "failed", metrics_app.FLAKY) == 0
    assert counter(after, "started", metrics_app.IDLE) == 0  # nobody here runs it
    duration = "flowexec_run_duration_seconds_count"
    assert sample(after, duration, flow_id=metrics_app.OK, outcome="completed") == 3
    assert sample(after, duration, flow_id=metrics_app.REFUSED, outcome="failed") == 1
    assert sample(after, duration, flow_id=metrics_app.FLAKY, outcome="retried") == 1
    assert (sample(after, "flowexec_claim_batch_size_sum") or 0) == 6  # every start
    assert (sample(after, "flowexec_claim_batch_size_count") or 0) >= 1
    assert sample(after, "flowexec_active_claims") == 0.0
    assert sample(after, "flowexec_heartbeat_lag_seconds") == 0.0
    assert (sample(after, "flowexec_queue_oldest_age_seconds", flow_id=metrics_app.IDLE)
            or 0) > 0
    assert sample(after, "flowexec_queue_depth", flow_id=metrics_app.OK) == 0

    # Anything but /metrics (or /) is not there.
    with pytest.raises(Exception, match="404"):
        await scrape(port, "/nothing")

    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 20) == 0, log.read_text()
