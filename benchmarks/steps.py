"""Workload: the cost of durable steps, a flow of 100 trivial nodes run by a real `Worker`.

Three flows of 100 nodes that return their index at once: one after another without
checkpoints (events only, the old at-least-once behaviour), one after another with a checkpoint
each (each node waits until its result is durable before the next starts: one round trip per
node, the price of the guarantee), and all 100 at once with checkpoints (`asyncio.gather`:
nodes that complete together share one write). Each figure is the flow's own time from its
first node to its last node's return, median over the flows of a repetition, run one at a time
on an idle worker; "appends" counts the store calls that carried node results.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

from benchmarks._common import Context, Stats, Table, Workload, fmt, repeat, sqlite_available
from flowexec.model import EventBatch
from flowexec.runtime import App, Client, FlowContext, Worker
from flowexec.store.protocol import ExecutionStore

NODES = 100
SERIES = (
    ("sequential, checkpoint=False", "steps-off"),
    ("sequential, checkpointed", "steps-on"),
    ("concurrent (gather), checkpointed", "steps-gather"),
)


async def _node(n: int) -> int:
    return n


class StepsApp:
    """The three flows; each notes how long its nodes took."""

    def __init__(self) -> None:
        self.app = App()
        self.took: dict[str, float] = {}
        self.app.register("steps-off", self._sequential, max_retries=0, checkpoint=False)
        self.app.register("steps-on", self._sequential, max_retries=0)
        self.app.register("steps-gather", self._gathered, max_retries=0)

    async def _sequential(self, ctx: FlowContext) -> int:
        began = time.perf_counter()
        total = 0
        for n in range(NODES):
            total += await ctx.node(f"n{n}", _node, n)
        self.took[ctx.execution_id] = time.perf_counter() - began
        return total

    async def _gathered(self, ctx: FlowContext) -> int:
        began = time.perf_counter()
        values = await asyncio.gather(*(ctx.node(f"n{n}", _node, n) for n in range(NODES)))
        self.took[ctx.execution_id] = time.perf_counter() - began
        return sum(values)


class AppendCounter:
    """Wraps the worker's store's `append_events` to count the calls carrying node results."""

    def __init__(self, store: ExecutionStore) -> None:
        self.calls = 0
        self._append = store.append_events

    async def __call__(self, worker_id: str, batches: Sequence[EventBatch]) -> set[str]:
        if any(b.checkpoints for b in batches):
            self.calls += 1
        return await self._append(worker_id, batches)


def measure(
    flows: StepsApp, client: Client, counter: AppendCounter, flow_id: str, count: int,
    appends: dict[str, list[float]],
) -> Callable[[int], Awaitable[float]]:
    async def one_repetition(_rep: int) -> float:
        took: list[float] = []
        before = counter.calls
        for _ in range(count):
            execution_id = await client.create(flow_id, owner_id="bench")
            done = await client.wait(execution_id, timeout=120)
            if done.result != sum(range(NODES)):
                raise RuntimeError(f"{flow_id} ended {done.status.value}: {done.error_message}")
            took.append(flows.took.pop(execution_id))
        appends[flow_id].append((counter.calls - before) / count)
        return statistics.median(took) * 1000

    return one_repetition


async def run(ctx: Context) -> list[Table]:
    count = ctx.scale(20, 2)
    prefix = ctx.prefix("steps")
    flows = StepsApp()
    appends: dict[str, list[float]] = {flow_id: [] for _, flow_id in SERIES}
    try:
        async with ctx.store(prefix) as store:
            counter = AppendCounter(store)
            store.append_events = counter  # type: ignore[method-assign]
            worker = Worker(flows.app, store, worker_id="bench-steps", recovery=False,
                            install_signal_handlers=False, poll_interval_s=0.05)
            task = asyncio.create_task(worker.run())
            try:
                client = await flows.app.client(store)
                await measure(flows, client, counter, "steps-on", 1, {"steps-on": []})(0)
                results = await repeat(ctx.reps, [
                    (name, measure(flows, client, counter, flow_id, count, appends))
                    for name, flow_id in SERIES
                ])
            finally:
                worker.stop()
                await task
    finally:
        await ctx.drop(prefix)
    return [_table(ctx, count, results, appends)]


def _table(ctx: Context, count: int, results: dict[str, Stats],
           appends: dict[str, list[float]]) -> Table:
    table = Table(
        f"Durable steps: a flow of {NODES} trivial nodes ({ctx.backend})",
        ["flow", "nodes (ms per flow)", "per node (ms)", "appends with results per flow"],
    )
    baseline = results[SERIES[0][0]]
    for name, flow_id in SERIES:
        stats = results[name]
        table.add(name, stats.cell(), fmt(stats.median / NODES),
                  fmt(statistics.median(appends[flow_id])))
    recorded = results[SERIES[1][0]]
    table.notes += [
        f"Median of {count} flows per repetition, run one at a time by one Worker; the time "
        "is measured inside the flow, from its first node's start to its last node's return.",
        f"A sequential checkpointed node costs {fmt((recorded.median - baseline.median) / NODES)}"
        " ms more than one without: its result is written (fenced, with its node:completed "
        "event) before the flow goes on.",
        "Concurrent nodes share writes: the results that complete while one write is in "
        "flight go out together in the next.",
    ]
    return table


WORKLOAD = Workload(
    "steps", "Durable steps",
    frozenset({"postgres", "sqlite"} if sqlite_available() else {"postgres"}), run,
)
