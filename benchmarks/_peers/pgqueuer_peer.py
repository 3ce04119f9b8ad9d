"""pgqueuer as its README sets it up: an asyncpg connection, a `PgQueuer` factory with one
entrypoint; jobs enqueued with `Queries.enqueue` (lists for a batch).

The worker process runs the factory with `pgqueuer.run`, which is what `pgq run` calls (on
uvloop), without the CLI: `pgq run` 1.6 fails to parse its own `--log-level` under the typer
this project installs. pgqueuer refuses a `max_concurrent_tasks` below twice `batch_size`, so
concurrency 10 takes a batch size of 5 (its default is 10).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar

import asyncpg
import pgqueuer
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries

from benchmarks._peers.jobs import dsn, job_started, run_event_loop
from benchmarks._peers.library import WORKER_CONCURRENCY, Library, python_module

ENTRYPOINT = "noop"
BATCH_SIZE = WORKER_CONCURRENCY // 2


@asynccontextmanager
async def worker_manager() -> AsyncIterator[PgQueuer]:
    """The factory the worker process runs: its connection lives as long as the worker."""
    connection = await asyncpg.connect(dsn())
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint(ENTRYPOINT)
    async def noop(job: Job) -> None:
        job_started(int(job.payload or b"-1"))

    try:
        yield pgq
    finally:
        await connection.close()


class PgqueuerEnqueuer:
    def __init__(self, queries: Queries) -> None:
        self.queries = queries

    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        await self.queries.enqueue(
            [ENTRYPOINT] * len(seqs), [str(n).encode() for n in seqs], [0] * len(seqs)
        )

    async def enqueue_one(self, seq: int) -> None:
        await self.queries.enqueue(ENTRYPOINT, str(seq).encode())


class Pgqueuer(Library):
    name: ClassVar[str] = "pgqueuer"
    distribution: ClassVar[str] = "pgqueuer"
    driver: ClassVar[str] = "asyncpg"
    worker_setup: ClassVar[str] = (
        f"`pgqueuer.run(factory, max_concurrent_tasks={WORKER_CONCURRENCY}, "
        f"batch_size={BATCH_SIZE})` as `pgq run` does (uvloop); schema by `pgq install`"
    )
    pending_sql: ClassVar[str] = "SELECT count(*) FROM pgqueuer"
    """Finished jobs leave the queue table (for its log)."""

    def install_command(self, dsn: str) -> list[str]:
        return python_module("pgqueuer", "--pg-dsn", dsn, "install")

    def worker_command(self, dsn: str) -> list[str]:
        return python_module(__name__)

    @asynccontextmanager
    async def client(self, dsn: str) -> AsyncIterator[PgqueuerEnqueuer]:
        connection = await asyncpg.connect(dsn)
        try:
            yield PgqueuerEnqueuer(Queries(AsyncpgDriver(connection)))
        finally:
            await connection.close()


LIBRARY = Pgqueuer()


if __name__ == "__main__":
    run_event_loop(pgqueuer.run(
        worker_manager, max_concurrent_tasks=WORKER_CONCURRENCY, batch_size=BATCH_SIZE))
