"""The real runtime under benchmark: `Worker`s of an `App` whose one flow does nothing.

The flow records when it started and counts its runs, which is how the latency workload sees
"the flow starts" and how the drain knows every flow ran.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from flowexec.metrics import FlowexecMetrics
from flowexec.runtime import App, FlowContext, Worker
from flowexec.runtime.observer import NO_OBSERVER
from flowexec.store.protocol import ExecutionStore

FLOW = "bench-flow"
WORKER_SETTINGS: dict[str, Any] = {
    "recovery": False,  # recovery is measured on its own (workload 6)
    "install_signal_handlers": False,
    "shutdown_grace_s": 5.0,
}


class NoopFlow:
    """An app with one flow, `bench-flow`, that returns at once; it notes when each run began."""

    def __init__(self) -> None:
        self.app = App()
        self.started: dict[str, float] = {}
        self.runs = 0
        self._expected = 0
        self._all_ran = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self.app.register(FLOW, self._flow, max_retries=0)

    async def _flow(self, ctx: FlowContext) -> None:
        now = time.perf_counter()
        waiter = self._waiters.pop(ctx.execution_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)
        self.runs += 1
        if self.runs >= self._expected > 0:
            self._all_ran.set()

    def expect_start(self, execution_id: str) -> asyncio.Future[float]:
        """A future resolved with the perf_counter time at which that execution's flow began."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[execution_id] = future
        return future

    def expect_runs(self, count: int) -> None:
        self.runs = 0
        self._expected = count
        self._all_ran.clear()

    async def all_ran(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._all_ran.wait(), timeout_s)


@asynccontextmanager
async def workers(
    flow: NoopFlow,
    stores: Sequence[ExecutionStore | str],
    prefix: str,
    *,
    metrics: bool = False,
    **settings: Any,
) -> AsyncIterator[list[Worker]]:
    """A Worker per store (an open one, or a URL it opens itself), running in this event loop
    for the duration of the block; with `metrics`, each records into its own `FlowexecMetrics`
    (nobody scrapes them: this is the hot path's cost)."""
    started = [
        Worker(flow.app, store, table_prefix=prefix, worker_id=f"bench-runtime-{n}",
               observer=FlowexecMetrics(flows=flow.app.flow_ids) if metrics else NO_OBSERVER,
               **{**WORKER_SETTINGS, **settings})
        for n, store in enumerate(stores)
    ]
    tasks = [asyncio.create_task(w.run(), name=f"bench-worker-{n}") for n, w in enumerate(started)]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [d for d in done if isinstance(d, BaseException)]
        if errors:
            raise errors[0]


async def until_idle(worker_list: list[Worker], settle_s: float = 0.01) -> None:
    """Until no worker holds a run, then a moment for the claim loop to park again."""
    while any(w.active_runs for w in worker_list):
        await asyncio.sleep(0.001)
    await asyncio.sleep(settle_s)
