"""oban (oban-py) as its README sets it up: a `@worker` class, `oban install`, `oban start
--queues default:10`; jobs enqueued with `Oban.enqueue`, and in bulk with `enqueue_many`.

oban needs Python >= 3.12; below that this module is never imported.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from oban import Oban, worker

from benchmarks._peers.jobs import job_started
from benchmarks._peers.library import WORKER_CONCURRENCY, Library, python_module

QUEUE = "default"


@worker(queue=QUEUE)
class Noop:
    async def process(self, job: Any) -> None:
        job_started(int(job.args["n"]))


class ObanEnqueuer:
    def __init__(self, oban: Oban) -> None:
        self.oban = oban

    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        await self.oban.enqueue_many([Noop.new({"n": n}) for n in seqs])

    async def enqueue_one(self, seq: int) -> None:
        await self.oban.enqueue(Noop.new({"n": seq}))


class ObanLibrary(Library):
    name: ClassVar[str] = "oban"
    distribution: ClassVar[str] = "oban"
    driver: ClassVar[str] = "psycopg 3 + psycopg-pool"
    worker_setup: ClassVar[str] = (
        f"`oban start --queues {QUEUE}:{WORKER_CONCURRENCY}` (uvloop); schema by "
        "`oban install`"
    )
    pending_sql: ClassVar[str] = "SELECT count(*) FROM oban_jobs WHERE state <> 'completed'"

    def install_command(self, dsn: str) -> list[str]:
        return python_module("oban", "install", "--dsn", dsn)

    def worker_command(self, dsn: str) -> list[str]:
        return python_module("oban", "start", "--dsn", dsn,
                             "--queues", f"{QUEUE}:{WORKER_CONCURRENCY}")

    @asynccontextmanager
    async def client(self, dsn: str) -> AsyncIterator[ObanEnqueuer]:
        pool = await Oban.create_pool(dsn)
        try:
            async with Oban(pool=pool) as oban:
                yield ObanEnqueuer(oban)
        finally:
            await pool.close()


LIBRARY = ObanLibrary()
