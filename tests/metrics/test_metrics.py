"""`FlowexecMetrics` in-process, on both backends: the scrape-time queue cache, recovery
sweeps, the API's hooks, one registry per instance, and bad configuration."""

from __future__ import annotations

import math
import re
import socket
import urllib.error

import pytest

from flowexec.errors import ConfigError
from flowexec.metrics import FlowexecMetrics, QueueGauges, exposition, serve_metrics
from flowexec.runtime.recovery import RecoveryService
from flowexec.store.protocol import ExecutionStore
from tests.conformance.helpers import (
    FLOW,
    OTHER_FLOW,
    SHORT_LEASE_MS,
    StoreFactory,
    create_root,
    start_running,
    wait_for_lease_end,
)
from tests.metrics.scraping import Samples, parse, sample, scrape


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def rendered(metrics: FlowexecMetrics) -> Samples:
    body, content_type = await metrics.render()
    assert content_type.startswith("text/plain")
    return parse(body.decode())


def depth(samples: Samples, flow_id: str) -> float | None:
    return sample(samples, "flowexec_queue_depth", flow_id=flow_id)


async def test_a_scrape_within_the_cache_age_does_not_ask_the_store(
    store: ExecutionStore,
) -> None:
    clock = Clock()
    gauges = QueueGauges(store, max_age_s=5.0, flows=[OTHER_FLOW], clock=clock)
    await create_root(store, flow_id=FLOW)
    await gauges.refresh()
    first = parse(exposition(gauges)[0].decode())
    assert depth(first, FLOW) == 1
    assert depth(first, OTHER_FLOW) == 0  # a flow given up front is there at 0
    assert sample(first, "flowexec_queue_stats_up") == 1

    await create_root(store, flow_id=FLOW)
    clock.now += 4.9
    await gauges.refresh()
    assert depth(parse(exposition(gauges)[0].decode()), FLOW) == 1  # cached

    clock.now += 0.2
    await gauges.refresh()
    later = parse(exposition(gauges)[0].decode())
    assert depth(later, FLOW) == 2
    age = sample(later, "flowexec_queue_oldest_age_seconds", flow_id=FLOW)
    assert age is not None and age > 0

    await create_root(store, flow_id=FLOW)
    gauges.expire()  # whatever the age: the next refresh asks the store
    await gauges.refresh()
    assert depth(parse(exposition(gauges)[0].decode()), FLOW) == 3


async def test_a_failing_store_keeps_the_last_figures_and_says_so(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory()
    clock = Clock()
    gauges = QueueGauges(store, max_age_s=1.0, clock=clock)
    await create_root(store, flow_id=FLOW)
    await gauges.refresh()
    await store.close()
    clock.now += 2
    await gauges.refresh()
    samples = parse(exposition(gauges)[0].decode())
    assert sample(samples, "flowexec_queue_stats_up") == 0
    assert depth(samples, FLOW) == 1


async def test_recovery_sweeps_count_what_they_recovered_per_flow(
    store: ExecutionStore,
) -> None:
    metrics = FlowexecMetrics(store, flows=[FLOW])
    await start_running(store, flow_id=FLOW, timeout_ms=SHORT_LEASE_MS)
    _, last = await start_running(store, flow_id=OTHER_FLOW, timeout_ms=SHORT_LEASE_MS)
    await wait_for_lease_end(store, last)  # the later of the two leases
    service = RecoveryService(store, worker_id="sweeper", observer=metrics)
    try:
        report = await service.sweep_once()
        assert report is not None and report.recovered == 2
        assert await service.sweep_once() is not None  # a sweep that finds nothing counts
    finally:
        await store.release_recovery_lock(service.lock_id)
    samples = await rendered(metrics)
    recovered = "flowexec_executions_recovered_total"
    assert sample(samples, recovered, flow_id=FLOW, reason="expired_claim") == 1
    assert sample(samples, recovered, flow_id=OTHER_FLOW, reason="expired_claim") == 1
    assert sample(samples, "flowexec_recovery_sweeps_total") == 2
    assert sample(samples, "flowexec_recovery_sweep_duration_seconds_count") == 2


async def test_the_api_hooks_and_one_registry_per_instance() -> None:
    first, second = FlowexecMetrics(), FlowexecMetrics()
    first.record_created(FLOW, 3)
    with first.sse_subscriber(), first.sse_subscriber():
        inside = await rendered(first)
    after = await rendered(first)
    assert sample(inside, "flowexec_sse_subscribers") == 2
    assert sample(after, "flowexec_sse_subscribers") == 0
    assert sample(after, "flowexec_executions_created_total", flow_id=FLOW) == 3
    untouched = await rendered(second)
    assert sample(untouched, "flowexec_executions_created_total", flow_id=FLOW) is None
    assert sample(untouched, "flowexec_queue_depth", flow_id=FLOW) is None  # no store: none


async def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    body, content_type = await FlowexecMetrics().render("application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "5", True, None])
def test_a_bad_cache_age_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="queue_cache_s must be a positive number"):
        FlowexecMetrics(queue_cache_s=bad)  # type: ignore[arg-type]


async def test_the_server_serves_until_the_block_ends(unused_tcp_port: int) -> None:
    metrics = FlowexecMetrics(flows=[FLOW])
    async with serve_metrics(metrics, "127.0.0.1", unused_tcp_port) as port:
        assert port == unused_tcp_port
        content_type, samples = await scrape(port)
        assert content_type.startswith("text/plain")
        assert sample(samples, "flowexec_executions_started_total", flow_id=FLOW) == 0
    with pytest.raises(urllib.error.URLError):
        await scrape(unused_tcp_port)


async def test_an_address_that_cannot_be_bound_is_a_config_error(unused_tcp_port: int) -> None:
    metrics = FlowexecMetrics()
    with pytest.raises(ConfigError, match=re.escape("cannot serve metrics on 256.0.0.1:")):
        async with serve_metrics(metrics, "256.0.0.1", unused_tcp_port):
            pass
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", unused_tcp_port))
        taken.listen()
        with pytest.raises(ConfigError, match=re.escape(f"127.0.0.1:{unused_tcp_port}")):
            async with serve_metrics(metrics, "127.0.0.1", unused_tcp_port):
                pass
