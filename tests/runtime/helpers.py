"""Shared pieces of the runtime tests: a worker tuned for speed, and waiting on store state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from flowexec import App, Client, Execution, ExecutionStatus, Worker
from flowexec.store.protocol import ExecutionStore

FAST: dict[str, Any] = {
    "claim_timeout_ms": 3_000,
    "heartbeat_interval_ms": 200,
    "poll_interval_s": 0.05,
    "control_interval_s": 0.05,
    "retry_backoff_base_ms": 10,
    "retry_backoff_max_ms": 40,
    "shutdown_grace_s": 2.0,
    "recovery": False,
    "install_signal_handlers": False,
}
"""Short leases and polls so that the suite stays quick; recovery has tests of its own."""

OWNER = "owner-1"


class BlockingNode:
    """A node that blocks until its run is cancelled, noting when it started and when it ended."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.cancelled_at: list[float] = []

    async def __call__(self) -> None:
        self.entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled_at.append(time.monotonic())
            raise


@asynccontextmanager
async def running_worker(
    app: App, store: ExecutionStore, **settings: Any
) -> AsyncIterator[Worker]:
    """A worker running in this event loop for the duration of the block."""
    worker = Worker(app, store, **{**FAST, **settings})
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, f"timed out after {within} s waiting for {what}"
        await asyncio.sleep(0.02)


async def wait_for_status(
    client: Client, execution_id: str, status: ExecutionStatus, *, within: float = 10.0
) -> Execution:
    async def reached() -> bool:
        return (await client.get(execution_id)).status is status

    await wait_until(reached, within=within, what=f"{execution_id} to be {status.value}")
    return await client.get(execution_id)


async def count_executions(store: ExecutionStore) -> int:
    stats = await store.get_stats()
    return sum(stats.counts_by_status.values())


def signal_when_set(event: asyncio.Event) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return event.is_set()

    return check
