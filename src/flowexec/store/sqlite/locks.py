"""Recovery locks of a SQLite store: OS file locks beside the database.

The kernel frees a file lock when its holder dies, which is what a recovery lock needs.
The files sit beside the database because every process that opens it sees that directory
(containers sharing a volume do not share /tmp); a holder removes its file when it lets go,
so a stopped worker leaves none behind. `flock(LOCK_NB)` never waits, so it runs on the event
loop itself; doing it on a thread could leak a taken lock if the caller were cancelled meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from flowexec.errors import StoreUnavailable
from flowexec.store.urls import SqliteTarget

LOCK_FILE_MODE = 0o600


class RecoveryFileLocks:
    """The recovery locks this store holds: lock id -> the descriptor holding the flock
    (None for an in-memory database, which belongs to this store alone)."""

    def __init__(self, target: SqliteTarget, table_prefix: str) -> None:
        self._target = target
        self._table_prefix = table_prefix
        self._held: dict[int, tuple[Path, int] | None] = {}
        self._mutex = asyncio.Lock()
        self._closed = False

    def path(self, lock_id: int) -> Path | None:
        """The file whose flock is recovery lock `lock_id` (None for `:memory:`)."""
        database = self._target.path
        if database is None:
            return None
        return database.with_name(
            f"{database.name}.{self._table_prefix}recovery-{lock_id}.lock"
        )

    async def try_lock(self, lock_id: int, lease_s: float) -> bool:
        """`lease_s` does not apply: the kernel frees the lock when its holder dies."""
        async with self._mutex:
            if self._closed:
                raise StoreUnavailable(f"the SQLite store on {self._target.display} is closed")
            if lock_id in self._held:
                return True
            path = self.path(lock_id)
            if path is None:
                self._held[lock_id] = None
                return True
            fd = self._take(path)
            if fd is None:
                return False
            self._held[lock_id] = (path, fd)
            return True

    async def unlock(self, lock_id: int) -> bool:
        async with self._mutex:
            if lock_id not in self._held:
                return False
            self._drop(lock_id)
            return True

    @contextlib.asynccontextmanager
    async def as_leader(self, lock_id: int) -> AsyncIterator[bool]:
        """Whether this store holds the lock. A flock has no terms to fence with: it cannot be
        taken from a live holder, and a dead one writes nothing (docs/architecture.md §6)."""
        yield lock_id in self._held

    async def close(self) -> None:
        async with self._mutex:
            self._closed = True
            for lock_id in list(self._held):
                self._drop(lock_id)

    @staticmethod
    def _take(path: Path) -> int | None:
        """A descriptor holding the file's lock, or None if another holder has it."""
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LOCK_FILE_MODE)
            except OSError as exc:
                raise StoreUnavailable(f"cannot open recovery lock file {path}: {exc}") from exc
            try:
                # The lock belongs to this open file description: another store in this
                # process opens its own and is excluded too; the kernel frees it on death.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except OSError as exc:
                os.close(fd)
                raise StoreUnavailable(f"cannot lock recovery lock file {path}: {exc}") from exc
            if _still_named(fd, path):
                return fd
            # The previous holder removed the file between our open and our flock: the lock
            # we got is on a file nobody else can find, so take the one now at `path`.
            os.close(fd)

    def _drop(self, lock_id: int) -> None:
        held = self._held.pop(lock_id)
        if held is None:
            return
        path, fd = held
        # Removed while still locked: whoever opened it meanwhile sees it is no longer
        # the file at `path` (`_take`) and opens the next one.
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _still_named(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
