"""The interface every library under comparison implements, and the list of them.

A `Library` knows its own commands (schema install, worker), how to enqueue from the harness
(in bulk and one at a time) and how to count the jobs it has not finished. Libraries that are
not installed, or need a newer Python, are skipped with the reason, before anything imports
them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import ClassVar, Protocol

WORKER_CONCURRENCY = 10
"""Jobs one worker process runs at a time, for every library."""


class Enqueuer(Protocol):
    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        """One job per sequence number, through the library's bulk API."""

    async def enqueue_one(self, seq: int) -> None:
        """One job, the way an application enqueues a single one."""


class Library(ABC):
    name: ClassVar[str]
    distribution: ClassVar[str]
    """The package whose version the report records."""
    driver: ClassVar[str]
    """The database driver, as its documentation recommends."""
    worker_setup: ClassVar[str]
    """How its worker runs: the command, the event loop, what differs from its defaults."""
    pending_sql: ClassVar[str]
    """One row, one column: the jobs it has not yet recorded as finished successfully."""

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)

    @abstractmethod
    def install_command(self, dsn: str) -> list[str]:
        """The documented schema install, as a command line."""

    @abstractmethod
    def worker_command(self, dsn: str) -> list[str]:
        """One worker process of concurrency `WORKER_CONCURRENCY`, as a command line."""

    @abstractmethod
    def client(self, dsn: str) -> AbstractAsyncContextManager[Enqueuer]:
        """What the application side holds open to enqueue."""


def python_module(module: str, *args: str) -> list[str]:
    """`python -m module args…` with this interpreter (the venv's console scripts may not be
    on PATH)."""
    return [sys.executable, "-m", module, *args]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A library the suite can compare with, before it is imported."""

    name: str
    module: str
    """The `benchmarks._peers` module that defines its `LIBRARY`."""
    requires: tuple[str, ...]
    """Distributions that must be installed (the library and its recommended driver)."""
    min_python: tuple[int, int] = (3, 11)

    def skip_reason(self) -> str | None:
        if sys.version_info < self.min_python:
            wanted = ".".join(map(str, self.min_python))
            return f"{self.name} needs Python >= {wanted} (this is {sys.version.split()[0]})"
        for distribution in self.requires:
            try:
                importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                return (f"{self.name} is not installed ({distribution} missing): "
                        "pip install -e '.[bench]'")
        return None

    def load(self) -> Library:
        library = importlib.import_module(self.module).LIBRARY
        if not isinstance(library, Library):
            raise TypeError(f"{self.module}.LIBRARY is not a Library")
        return library


FLOWEXEC = Candidate("flowexec", "benchmarks._peers.flowexec_peer", ("flowexec",))
PEERS = (
    Candidate("pgqueuer", "benchmarks._peers.pgqueuer_peer", ("pgqueuer", "asyncpg")),
    Candidate("procrastinate", "benchmarks._peers.procrastinate_peer", ("procrastinate",)),
    Candidate("oban", "benchmarks._peers.oban_peer", ("oban",), min_python=(3, 12)),
)


def available_peers() -> tuple[list[Library], list[str]]:
    """(the peers that can run here, a one-line reason for each that cannot)."""
    libraries: list[Library] = []
    skipped: list[str] = []
    for candidate in PEERS:
        reason = candidate.skip_reason()
        if reason is None:
            libraries.append(candidate.load())
        else:
            skipped.append(reason)
    return libraries, skipped
