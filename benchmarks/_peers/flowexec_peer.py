"""flowexec as a user runs it: an `App` with one no-op flow, `Worker(app, url,
concurrency=10)` in a process of its own (`python -m benchmarks._peers.flowexec_peer`).

The worker process runs on uvloop when it is installed, as pgqueuer's and oban's CLIs do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar

from benchmarks._peers.jobs import dsn, job_started, run_event_loop
from benchmarks._peers.library import WORKER_CONCURRENCY, Library, python_module
from flowexec import App, Client, FlowContext, Worker

FLOW = "noop"
OWNER = "bench-owner"

app = App()


@app.flow(FLOW)
async def noop(ctx: FlowContext) -> None:
    integration = ctx.integration or {}
    job_started(int(str(integration["n"])))


async def create_batch(client: Client, seqs: Sequence[int]) -> None:
    """A bulk enqueue: one `create_many`, one statement for the whole batch."""
    await client.create_many(FLOW, [{"owner_id": OWNER, "integration": {"n": n}} for n in seqs])


class FlowexecEnqueuer:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        await create_batch(self.client, seqs)

    async def enqueue_one(self, seq: int) -> None:
        await self.client.create(FLOW, owner_id=OWNER, integration={"n": seq})


class Flowexec(Library):
    name: ClassVar[str] = "flowexec"
    distribution: ClassVar[str] = "flowexec"
    driver: ClassVar[str] = "psycopg 3 + psycopg-pool"
    worker_setup: ClassVar[str] = (
        f"`Worker(app, url, concurrency={WORKER_CONCURRENCY})` in its own process, "
        "uvloop when installed; schema by `flowexec migrate`"
    )
    pending_sql: ClassVar[str] = (
        "SELECT count(*) FROM flowexec_executions WHERE status <> 'completed'"
    )

    def install_command(self, dsn: str) -> list[str]:
        return python_module("flowexec", "--database-url", dsn, "migrate")

    def worker_command(self, dsn: str) -> list[str]:
        return python_module(__name__)

    @asynccontextmanager
    async def client(self, dsn: str) -> AsyncIterator[FlowexecEnqueuer]:
        async with await app.client(dsn) as client:
            yield FlowexecEnqueuer(client)


LIBRARY = Flowexec()


if __name__ == "__main__":
    run_event_loop(Worker(app, dsn(), concurrency=WORKER_CONCURRENCY).run())
