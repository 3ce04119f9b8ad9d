"""Helpers of the SQLite backend tests: child processes, raw connections, schema dumps."""

from __future__ import annotations

import json
import queue
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROCS = Path(__file__).with_name("sqlite_procs.py")


class Child:
    """`sqlite_procs.py COMMAND ...` in its own OS process, read line by line from a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PROCS), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._errors: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._errors.append(line)

    def read(self, timeout: float = 60) -> Any:
        """The next JSON line the child printed."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"child {self.proc.args} said nothing for {timeout} s") from None
        if line is None:
            raise AssertionError(
                f"child {self.proc.args} exited with {self.proc.wait()}: {self.stderr()}"
            )
        return json.loads(line)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Exit code and stderr, once the child is done."""
        code = self.proc.wait(timeout=timeout)
        return code, self.stderr()

    def stderr(self) -> str:
        """What the child wrote to stderr so far (all of it once it has exited)."""
        if self.proc.poll() is not None:
            self._readers[1].join(timeout=10)
        return "".join(self._errors)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for reader in self._readers:  # both end at EOF, now that the child is gone
            reader.join(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@contextmanager
def children(*commands: tuple[str, ...]) -> Iterator[list[Child]]:
    started: list[Child] = []
    try:
        for args in commands:
            started.append(Child(*args))
        yield started
    finally:
        for child in started:
            child.kill()


def raw_connection(path: Path) -> sqlite3.Connection:
    """A plain connection to the file, outside any store (autocommit, no foreign keys)."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def schema(path: Path) -> list[tuple[str, str, str, str | None]]:
    """Every table and index, with its SQL, as SQLite itself records it."""
    conn = raw_connection(path)
    try:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()
    return [tuple(r) for r in rows]


@contextmanager
def write_lock_held(path: Path, seconds: float) -> Iterator[threading.Thread]:
    """Another connection holds the database's write lock for `seconds`, from a thread."""
    taken = threading.Event()

    def hold() -> None:
        conn = raw_connection(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            threading.Event().wait(seconds)
            conn.execute("COMMIT")
        finally:
            conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10), "the holder never got the write lock"
    try:
        yield thread
    finally:
        thread.join(timeout=seconds + 10)
