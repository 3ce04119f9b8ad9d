"""procrastinate as its documentation sets it up: an `App` on a `PsycopgConnector` with one
async task, run by `procrastinate worker`; jobs deferred with `defer_async`, and in bulk with
`batch_defer_async`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar

from procrastinate import App, PsycopgConnector

from benchmarks._peers.jobs import DSN_ENV, job_started
from benchmarks._peers.library import WORKER_CONCURRENCY, Library, python_module

app = App(connector=PsycopgConnector(conninfo=os.environ.get(DSN_ENV, "")))


@app.task(name="noop")
async def noop(n: int) -> None:
    job_started(n)


class ProcrastinateEnqueuer:
    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        await noop.batch_defer_async(*({"n": n} for n in seqs))

    async def enqueue_one(self, seq: int) -> None:
        await noop.defer_async(n=seq)


class Procrastinate(Library):
    name: ClassVar[str] = "procrastinate"
    distribution: ClassVar[str] = "procrastinate"
    driver: ClassVar[str] = "psycopg 3 (PsycopgConnector)"
    worker_setup: ClassVar[str] = (
        f"`procrastinate worker --concurrency {WORKER_CONCURRENCY}` (asyncio); schema by "
        "`procrastinate schema --apply`"
    )
    pending_sql: ClassVar[str] = (
        "SELECT count(*) FROM procrastinate_jobs WHERE status <> 'succeeded'"
    )

    def install_command(self, dsn: str) -> list[str]:
        return python_module("procrastinate", "--app", f"{__name__}.app", "schema", "--apply")

    def worker_command(self, dsn: str) -> list[str]:
        return python_module("procrastinate", "--app", f"{__name__}.app", "worker",
                             "--concurrency", str(WORKER_CONCURRENCY))

    @asynccontextmanager
    async def client(self, dsn: str) -> AsyncIterator[ProcrastinateEnqueuer]:
        with app.replace_connector(PsycopgConnector(conninfo=dsn)):
            async with app.open_async():
                yield ProcrastinateEnqueuer()


LIBRARY = Procrastinate()
