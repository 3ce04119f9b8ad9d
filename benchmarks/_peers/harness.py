"""The four phases, the same for every library, on a database created for one repetition.

In the order they run:
(a) bulk enqueue `jobs` in batches of 1,000 (no worker running);
(b) drain them: a worker process is started; the clock runs from the first job's start to the
    moment the library has recorded the last one finished (its own tables say so); the
    process's start-up (interpreter, imports, connecting) is reported apart;
(d) with the same worker now idle, create -> start latency at a fixed rate: a job is enqueued
    every 1/rate s and reports when it starts (UDP, on the machine's monotonic clock);
(c) with the worker stopped, enqueue one job at a time.
Worker processes get SIGTERM, then SIGKILL if they have not exited within a bound.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from benchmarks._common import percentile
from benchmarks._peers.jobs import DSN_ENV, REPORT_ENV, now
from benchmarks._peers.library import Enqueuer, Library
from benchmarks._postgres import PostgresBench

REPO = Path(__file__).resolve().parents[2]
BATCH = 1_000
INSTALL_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
"""SIGTERM lets a worker finish what it runs (no-ops); after this it gets SIGKILL."""
FAST_POLL_S = 0.005
SLOW_POLL_S = 0.5
LATENCY_WARMUP = 10
PERCENTILES = (50, 95, 99)


@dataclass(frozen=True, slots=True)
class Sizes:
    jobs: int
    """Enqueued in bulk, then drained."""
    single: int
    """Enqueued one at a time."""
    rate: int
    """Latency: jobs per second."""
    seconds: float
    """Latency: how long."""
    drain_timeout_s: float


@dataclass(frozen=True, slots=True)
class Figures:
    """One repetition of one library."""

    bulk_per_s: float
    drain_per_s: float
    startup_s: float
    single_per_s: float
    latency_ms: dict[int, float]


class StartListener(asyncio.DatagramProtocol):
    """Collects the `seq start-time` datagrams the jobs send."""

    def __init__(self) -> None:
        self.starts: dict[int, float] = {}
        self._wanted = 0
        self._reached = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        seq, started = data.split()
        self.starts.setdefault(int(seq), float(started))
        if len(self.starts) >= self._wanted > 0:
            self._reached.set()

    def expect(self, count: int) -> None:
        self.starts.clear()
        self._wanted = count
        self._reached.clear()

    async def reached(self, timeout_s: float) -> bool:
        """Until `count` distinct jobs have reported; False when the timeout came first."""
        try:
            await asyncio.wait_for(self._reached.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


@asynccontextmanager
async def start_listener() -> AsyncIterator[tuple[StartListener, str]]:
    """(the listener, its `host:port`)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with suppress(OSError):  # a deep buffer: 20,000 starts can arrive in a few seconds
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    transport, listener = await asyncio.get_running_loop().create_datagram_endpoint(
        StartListener, sock=sock
    )
    try:
        yield listener, f"{host}:{port}"
    finally:
        transport.close()


@asynccontextmanager
async def fresh_database(pg: PostgresBench, name: str) -> AsyncIterator[str]:
    """A new database on the bench server for the block; its URL. Dropped afterwards."""
    identifier = sql.Identifier(name)
    async with await pg.connect() as conn:
        await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        await conn.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
    try:
        yield urlunsplit(urlsplit(pg.url)._replace(path=f"/{name}"))
    finally:
        async with await pg.connect() as conn:
            await conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))


class Runner:
    """Runs a library's commands with the environment its app modules read."""

    def __init__(self, dsn: str, report_to: str, log_dir: Path) -> None:
        self.env = {
            **os.environ,
            DSN_ENV: dsn,
            REPORT_ENV: report_to,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                         os.environ.get("PYTHONPATH")])),
        }
        self.log_dir = log_dir

    def log_path(self, label: str) -> Path:
        return self.log_dir / f"{label}.log"

    def tail(self, label: str, lines: int = 15) -> str:
        try:
            text = self.log_path(label).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def install(self, command: list[str], label: str) -> None:
        with self.log_path(label).open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            try:
                code = await asyncio.wait_for(process.wait(), INSTALL_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise
        if code != 0:
            raise RuntimeError(f"{' '.join(command[2:4])} exited {code}:\n{self.tail(label)}")

    @asynccontextmanager
    async def worker(self, command: list[str], label: str
                     ) -> AsyncIterator[asyncio.subprocess.Process]:
        with self.log_path(label).open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            try:
                yield process
            finally:
                await stop(process)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, and SIGKILL if it has not exited after `STOP_TIMEOUT_S`."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()


class Session:
    """One library on one fresh database, its enqueuer open, measuring the phases."""

    def __init__(self, library: Library, enqueuer: Enqueuer, listener: StartListener,
                 runner: Runner, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        self.library = library
        self.enqueuer = enqueuer
        self.listener = listener
        self.runner = runner
        self.conn = conn

    async def pending(self) -> int:
        cur = await self.conn.execute(self.library.pending_sql.encode())
        row = await cur.fetchone()
        return -1 if row is None else int(row[0])

    async def bulk(self, seqs: range) -> float:
        started = now()
        for first in range(0, len(seqs), BATCH):
            await self.enqueuer.enqueue_batch(seqs[first:first + BATCH])
        elapsed = now() - started
        pending = await self.pending()
        if pending != len(seqs):
            raise RuntimeError(f"{self.library.name}: {pending} jobs queued of {len(seqs)}")
        return len(seqs) / elapsed

    async def drain(self, count: int, spawned: float, process: asyncio.subprocess.Process,
                    timeout_s: float) -> tuple[float, float]:
        """(jobs/s from the first start to the last finish, seconds from spawn to the first
        start)."""
        deadline = now() + timeout_s
        self.listener.expect(count)
        # Slow polls only: every job reports its start, and only then does the end draw near.
        while not await self.listener.reached(SLOW_POLL_S):
            self._check(process, deadline, f"{len(self.listener.starts)} of {count} started")
            if await self.pending() == 0:
                break
        while (pending := await self.pending()) > 0:
            self._check(process, deadline, f"{pending} of {count} not finished")
            await asyncio.sleep(FAST_POLL_S)
        finished = now()
        if len(self.listener.starts) != count:
            raise RuntimeError(f"{self.library.name}: {len(self.listener.starts)} of {count} "
                               "jobs reported their start")
        first = min(self.listener.starts.values())
        return count / (finished - first), first - spawned

    def _check(self, process: asyncio.subprocess.Process, deadline: float, progress: str
               ) -> None:
        if process.returncode is not None:
            raise RuntimeError(f"{self.library.name} worker exited {process.returncode} "
                               f"({progress}):\n{self.runner.tail(self.library.name)}")
        if now() > deadline:
            raise TimeoutError(f"{self.library.name}: {progress} at the deadline")

    async def latency(self, seqs: range, rate: int) -> list[float]:
        """Milliseconds from calling enqueue to the job starting, one job every 1/rate s."""
        self.listener.expect(len(seqs))
        created: dict[int, float] = {}
        begin = now()
        for k, seq in enumerate(seqs):
            await asyncio.sleep(max(0.0, begin + k / rate - now()))
            created[seq] = now()
            await self.enqueuer.enqueue_one(seq)
        if not await self.listener.reached(10.0):
            raise TimeoutError(f"{self.library.name}: {len(self.listener.starts)} of "
                               f"{len(seqs)} latency jobs started")
        return [(self.listener.starts[seq] - t) * 1000 for seq, t in created.items()]

    async def single(self, seqs: range) -> float:
        started = now()
        for seq in seqs:
            await self.enqueuer.enqueue_one(seq)
        return len(seqs) / (now() - started)


@dataclass(frozen=True, slots=True)
class Harness:
    """What every measurement shares: the server, the sizes, where the jobs report to."""

    pg: PostgresBench
    sizes: Sizes
    listener: StartListener
    report_to: str
    log_dir: Path
    log: Callable[[str], None]

    async def measure(self, library: Library, rep: int) -> Figures:
        """Every phase once, on a database made for it."""
        sizes = self.sizes
        database = f"{self.pg.url.rsplit('/', 1)[1]}_{library.name}_{rep}"
        async with fresh_database(self.pg, database) as dsn:
            runner = Runner(dsn, self.report_to, self.log_dir)
            await runner.install(library.install_command(dsn), f"{library.name}-install")
            drained = range(sizes.jobs)
            warmup = range(drained.stop, drained.stop + LATENCY_WARMUP)
            timed = range(warmup.stop, warmup.stop + round(sizes.rate * sizes.seconds))
            singles = range(timed.stop, timed.stop + sizes.single)
            async with (
                library.client(dsn) as enqueuer,
                await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
            ):
                session = Session(library, enqueuer, self.listener, runner, conn)
                bulk = await session.bulk(drained)
                self.log(f"{library.name}: bulk enqueue {bulk:,.0f} jobs/s")
                spawned = now()
                async with runner.worker(library.worker_command(dsn), library.name) as process:
                    drain, startup = await session.drain(sizes.jobs, spawned, process,
                                                         sizes.drain_timeout_s)
                    self.log(f"{library.name}: drain {drain:,.0f} jobs/s "
                             f"(start-up {startup:.2f} s)")
                    await session.latency(warmup, sizes.rate)
                    latencies = await session.latency(timed, sizes.rate)
                single = await session.single(singles)
                self.log(f"{library.name}: one at a time {single:,.0f} jobs/s")
        return Figures(bulk, drain, startup, single,
                       {p: percentile(latencies, p) for p in PERCENTILES})


@asynccontextmanager
async def open_harness(pg: PostgresBench, sizes: Sizes, log: Callable[[str], None]
                       ) -> AsyncIterator[Harness]:
    """A harness listening for job starts; the worker logs go to a temporary directory
    (a failure quotes the end of its log)."""
    with tempfile.TemporaryDirectory(prefix="flowexec-bench-peers-") as log_dir:
        async with start_listener() as (listener, report_to):
            yield Harness(pg, sizes, listener, report_to, Path(log_dir), log)
