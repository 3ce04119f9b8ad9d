"""Workload 8: the HTTP API under load, over loopback.

A real `flowexec serve` process; `subscribers` clients each follow one running execution over
Server-Sent Events while the bench, acting as the worker, appends a log event to every followed
execution `rounds_per_s` times a second (one `append_events` for all of them), and a creator
POSTs new executions at `creates_per_s`. At the end every followed execution completes, so each
stream ends after its terminal event; every subscriber must have received every event of its
execution exactly once, in order. Reported: create latency (p50/p99), events delivered per
second, delivery lag (append commit to receipt, p50/p99), the server's memory before and after.
Streams are spread over tokens, 10 per token, below the per-token cap.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

from benchmarks._common import Context, Table, Workload, fmt, percentile
from flowexec.model import (
    EventBatch,
    EventType,
    ExecutionStatus,
    NewEvent,
    UpdateExecutionStatusParams,
)
from flowexec.store.protocol import ExecutionStore

WORKER = "bench-api-worker"
STREAMS_PER_TOKEN = 10
ROUNDS_PER_S = 2.0
CREATES_PER_S = 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _serve(url: str, prefix: str, port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowexec", "--database-url", url, "--table-prefix", prefix,
        "serve", "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/api/v1/healthz")).is_success:
                    return process
            except httpx.TransportError:
                await asyncio.sleep(0.05)


async def _follow(
    http: httpx.AsyncClient, execution_id: str, lags: list[float]
) -> list[int]:
    """Every index the stream delivers, until its end event."""
    indexes: list[int] = []
    headers = {"Accept": "text/event-stream"}
    async with http.stream("GET", f"/executions/{execution_id}/events", headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {") and line != "data: {}":
                event = json.loads(line[6:])
                indexes.append(event["index"])
                lags.append(time.time() - _epoch_s(event["at"]))
    return indexes


def _epoch_s(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def _create_at_rate(
    http: httpx.AsyncClient, rate: float, until: float, latencies: list[float]
) -> None:
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        started = time.perf_counter()
        response = await http.post("/executions", json={"flow_id": "bench-api", "start": False})
        response.raise_for_status()
        latencies.append(time.perf_counter() - started)
        next_at += 1 / rate


async def _append_at_rate(
    store: ExecutionStore, epochs: dict[str, int], until: float
) -> int:
    loop = asyncio.get_running_loop()
    rounds = 0
    next_at = loop.time()
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        event = (NewEvent(EventType.LOG, {"round": rounds}),)
        batches = [EventBatch(i, epoch, event) for i, epoch in epochs.items()]
        assert len(await store.append_events(WORKER, batches)) == len(batches)
        rounds += 1
        next_at += 1 / ROUNDS_PER_S
    return rounds


async def _start_running(store: ExecutionStore, execution_id: str) -> int:
    claim = await store.claim_execution(execution_id, WORKER, 600_000)
    assert claim is not None
    await store.update_execution_status(
        UpdateExecutionStatusParams(
            execution_id, ExecutionStatus.RUNNING, worker_id=WORKER, epoch=claim.epoch
        )
    )
    return claim.epoch


async def run(ctx: Context) -> list[Table]:
    subscribers = ctx.scale(200, 20)
    seconds = ctx.seconds(30.0, 4.0)
    prefix = ctx.prefix("api")
    port = _free_port()
    url = ctx.store_url(prefix)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(30.0, read=None)
    try:
        async with ctx.store(prefix) as store:
            tokens = [
                (await store.create_token("bench", admin=True)).bearer
                for _ in range(-(-subscribers // STREAMS_PER_TOKEN))
            ]
            server = await _serve(url, prefix, port)
            try:
                clients = [
                    httpx.AsyncClient(
                        base_url=f"http://127.0.0.1:{port}/api/v1", limits=limits,
                        timeout=timeout, headers={"Authorization": f"Bearer {t}"},
                    )
                    for t in tokens
                ]
                rss_before = _rss_mib(server.pid)
                ids = [
                    (await clients[0].post("/executions", json={"flow_id": "bench-api"})).json()[
                        "id"
                    ]
                    for _ in range(subscribers)
                ]
                epochs = {i: await _start_running(store, i) for i in ids}
                ctx.log(f"{subscribers} subscribers for {seconds:g} s")
                lags: list[float] = []
                streams = [
                    asyncio.create_task(
                        _follow(clients[n // STREAMS_PER_TOKEN], execution_id, lags)
                    )
                    for n, execution_id in enumerate(ids)
                ]
                await asyncio.sleep(0.5)  # let every stream connect and catch up
                lags.clear()
                loop = asyncio.get_running_loop()
                until = loop.time() + seconds
                latencies: list[float] = []
                began = time.perf_counter()
                creating = asyncio.create_task(
                    _create_at_rate(clients[0], CREATES_PER_S, until, latencies)
                )
                rounds = await _append_at_rate(store, epochs, until)
                await creating
                for execution_id, epoch in epochs.items():
                    await store.update_execution_status(
                        UpdateExecutionStatusParams(
                            execution_id, ExecutionStatus.COMPLETED, worker_id=WORKER,
                            epoch=epoch,
                        )
                    )
                delivered = await asyncio.gather(*streams)
                elapsed = time.perf_counter() - began
                rss_after = _rss_mib(server.pid)
                for client in clients:
                    await client.aclose()
            finally:
                server.terminate()
                await server.wait()
    finally:
        await ctx.drop(prefix)
    expected = list(range(rounds + 2))  # flow:started, the rounds, flow:completed
    wrong = sum(1 for indexes in delivered if indexes != expected)
    if wrong:
        raise AssertionError(f"{wrong} of {subscribers} streams did not get every event once")
    events = sum(len(d) for d in delivered)
    table = Table(
        f"8. HTTP API under load ({ctx.backend}): {subscribers} SSE subscribers, "
        f"{CREATES_PER_S:g} creates/s, {seconds:g} s",
        ["figure", "value"],
    )
    table.add("create latency p50 / p99 (ms)",
              f"{fmt(percentile(latencies, 50) * 1000)} / {fmt(percentile(latencies, 99) * 1000)}")
    table.add("events delivered per second", fmt(events / elapsed))
    table.add("delivery lag p50 / p99 (ms)",
              f"{fmt(percentile(lags, 50) * 1000)} / {fmt(percentile(lags, 99) * 1000)}")
    table.add("server memory before / after (MiB RSS)", f"{fmt(rss_before)} / {fmt(rss_after)}")
    table.notes.append(
        f"every stream got all {len(expected)} events of its execution exactly once, in order; "
        f"{len(latencies)} creates; one run (not repeated); one server process, the load "
        "generator and the database share the machine"
    )
    return [table]


WORKLOAD = Workload(
    name="api",
    title="HTTP API under load",
    backends=frozenset({"postgres", "sqlite"}),
    run=run,
)
