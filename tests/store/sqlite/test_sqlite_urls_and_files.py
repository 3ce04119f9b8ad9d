"""SQLite URLs and database files: where the database lands, and typed errors for bad ones."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_helpers import raw_connection

from flowexec import new_execution, open_store
from flowexec.errors import ConfigError, FlowexecError, StoreUnavailable
from flowexec.store.sqlite import SqliteExecutionStore

NOBODY = 65534


def _files(directory: Path) -> list[Path]:
    return list(directory.iterdir())


async def test_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    async with await open_store("sqlite:///data/rel.db") as store:
        assert isinstance(store, SqliteExecutionStore)
        assert store.path == tmp_path / "data" / "rel.db"
        await store.create(new_execution("flow", "owner"))
    assert (tmp_path / "data" / "rel.db").is_file()


async def test_absolute_url_with_four_slashes(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    assert str(path).startswith("/")
    async with await open_store(f"sqlite:///{path}") as store:
        assert isinstance(store, SqliteExecutionStore)
        assert store.path == path
    conn = raw_connection(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_default_url_is_flowexec_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLOWEXEC_DATABASE_URL", raising=False)
    async with await open_store() as store:
        assert store.backend == "sqlite"
    assert (tmp_path / "flowexec.db").is_file()


async def test_memory_databases_are_private_to_their_store(tmp_path: Path) -> None:
    async with await open_store("sqlite:///:memory:") as one, await open_store(
        "sqlite:///:memory:"
    ) as two:
        execution = new_execution("flow", "owner")
        await one.create(execution)
        assert await one.get(execution.id) is not None
        assert await two.get(execution.id) is None
        claims = await one.claim_next("worker", 1000)
        assert [c.execution_id for c in claims] == [execution.id]
        assert await one.try_acquire_recovery_lock(1) is True
        assert await one.try_acquire_recovery_lock(1) is True
        assert await one.release_recovery_lock(1) is True
        assert await one.release_recovery_lock(1) is False
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite://host/x.db", "names a host"),
        ("sqlite://", "names no database file"),
        ("sqlite:////", "names no database file"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///x.db?mode=ro", "query string"),
        ("sqlite:///x.db#frag", "query string"),
        ("sqlite:///bad\x00name.db", "NUL"),
        ("sqlite:x.db", "not a database URL"),
        ("mysql:///x.db", "unsupported database URL scheme"),
    ],
)
async def test_bad_urls_are_config_errors(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        await open_store(url)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("busy_timeout_ms", -1),
        ("busy_timeout_ms", "5000"),
        ("lock_timeout_s", 0),
        ("commit_poll_interval_s", True),
        ("poll_interval_s", 0.1),  # the Worker's option, not the store's
        ("synchronous", "off"),
        ("pool_max_size", 5),
    ],
)
async def test_bad_options_are_config_errors(tmp_path: Path, option: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        await open_store(f"sqlite:///{tmp_path / 'x.db'}", **{option: value})
    assert option in str(info.value)
    assert _files(tmp_path) == []


async def test_missing_directory_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "x.db"
    with pytest.raises(ConfigError) as info:
        await open_store(f"sqlite:///{path}")
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)
    assert not path.parent.exists()


async def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        await open_store(f"sqlite:///{tmp_path}")
    assert "is a directory" in str(info.value)


async def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(StoreUnavailable) as info:
        await open_store(f"sqlite:///{path}")
    assert str(path) in str(info.value)
    assert "not a usable SQLite database" in str(info.value)
    assert path.read_bytes() == content, "flowexec wrote to a file that is not its database"


async def test_a_corrupted_database(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    async with await open_store(f"sqlite:///{path}") as store:
        for _ in range(50):
            await store.create(new_execution("flow", "owner"))
    conn = raw_connection(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with path.open("r+b") as f:  # garble every page after the schema page
        size = path.stat().st_size
        f.seek(page_size)
        f.write(os.urandom(size - page_size))
    with pytest.raises(StoreUnavailable) as info:
        async with await open_store(f"sqlite:///{path}") as store:
            await store.get_root_executions("flow")
    assert str(path) in str(info.value)
    assert "not a usable SQLite database" in str(info.value)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="flowexec-sqlite-perm-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


def _open_error_in_child(url: str) -> str:
    """Open the store in a forked child without root's powers; its error, as `Type: message`.

    Root reads any file whatever its mode, so as root the child becomes `nobody` first.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                asyncio.run(_open_and_close(url))
                report = "opened"
            except FlowexecError as exc:
                report = f"{type(exc).__name__}: {exc}"
            os.write(write_end, report.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    os.waitpid(pid, 0)
    return report


async def _open_and_close(url: str) -> None:
    store = await open_store(url)
    await store.close()


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [(0o000, "StoreUnavailable: "), (0o444, "opened")],  # read-only: opened for inspection
    ids=["mode-000", "mode-444"],
)
def test_a_file_this_process_cannot_read_and_write(
    shared_dir: Path, mode: int, outcome: str
) -> None:
    path = shared_dir / "private.db"
    asyncio.run(_open_and_close(f"sqlite:///{path}"))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.chmod(mode)
    report = _open_error_in_child(f"sqlite:///{path}")
    assert report.startswith(outcome), report
    if mode == 0o000:
        assert str(path) in report
        assert "not readable" in report
