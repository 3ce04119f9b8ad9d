"""SQLite files: created owner-only whatever the umask, and a database the user may only read
can be inspected (ls, show, tree, claims, stats) without a single write."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowexec import Execution, new_execution, open_store

OWNER_ONLY = 0o600


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


async def test_database_wal_shm_and_lock_files_are_owner_only(
    tmp_path: Path, permissive_umask: None
) -> None:
    directory_mode = _mode(tmp_path)
    path = tmp_path / "owned.db"
    async with await open_store(f"sqlite:///{path}") as store:
        await store.create(new_execution("flow", "owner"))
        assert await store.try_acquire_recovery_lock(7)
        created = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240 - a test listing
        modes = {p.name: _mode(p) for p in tmp_path.iterdir()}  # noqa: ASYNC240
        await store.release_recovery_lock(7)
        assert not any(p.suffix == ".lock" for p in tmp_path.iterdir())  # noqa: ASYNC240
    assert {"owned.db", "owned.db-wal", "owned.db-shm"} <= set(created)
    assert any(name.endswith(".lock") for name in created), created
    assert modes == dict.fromkeys(created, OWNER_ONLY)
    assert _mode(tmp_path) == directory_mode


WITHOUT_OVERRIDES = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
"""Root reads and writes any file; without these capabilities it honours file modes too."""


def _run_as_reader(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m flowexec ...` by a process that may read the database but not write it."""
    privileges = WITHOUT_OVERRIDES if os.geteuid() == 0 else []
    return subprocess.run(
        [*privileges, sys.executable, "-m", "flowexec", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )


def _digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())
    }


async def _seed(url: str) -> Execution:
    async with await open_store(url) as store:
        root = new_execution("flow", "owner")
        await store.create(root)
        await store.create(new_execution("flow", "owner", parent=root))
        await store.claim_execution(root.id, "w", 60_000)
    return root


@pytest.mark.parametrize("directory_writable", [True, False])
def test_a_read_only_database_can_be_inspected_without_a_write(
    tmp_path: Path, directory_writable: bool
) -> None:
    """In a writable directory SQLite reads the WAL through a shared-memory file of its own;
    in a read-only one the file is opened as immutable."""
    path = tmp_path / "inspect.db"
    url = f"sqlite:///{path}"
    root = asyncio.run(_seed(url))
    path.chmod(0o400)
    if not directory_writable:
        tmp_path.chmod(0o500)
    before = _digest(tmp_path)

    inspected = {
        name: _run_as_reader("--database-url", url, *args)
        for name, args in {
            "ls": ["ls", "flow"],
            "show": ["show", root.id],
            "tree": ["tree", root.id],
            "claims": ["claims"],
            "stats": ["--json", "stats"],
        }.items()
    }
    for name, result in inspected.items():
        assert result.returncode == 0, (name, result.stderr)
    assert root.id in inspected["ls"].stdout
    counts = json.loads(inspected["stats"].stdout)["counts_by_status"]
    assert counts["created"] == 2 and sum(counts.values()) == 2
    refused = _run_as_reader("--database-url", url, "stop", root.id)
    assert refused.returncode == 3, refused.stderr
    assert "read-only" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    after = _digest(tmp_path)
    tmp_path.chmod(0o700)
    assert after["inspect.db"] == before["inspect.db"]
    empty = hashlib.sha256(b"").hexdigest()
    # In a writable directory SQLite may leave its own empty WAL and shared-memory index.
    assert {k: v for k, v in after.items() if k != "inspect.db" and not k.endswith("-shm")} in (
        {}, {"inspect.db-wal": empty}
    )
