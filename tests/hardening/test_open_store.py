"""`open_store` and the Client: bad URLs, options and arguments are typed errors on both
backends, and a refused call leaves the database as it was."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from flowexec import ConfigError, FlowexecError, ValidationError, open_store
from flowexec.runtime import Client
from flowexec.store.protocol import ExecutionStore
from tests.conftest import drop_prefixed_tables

from .snapshots import snapshot

COMMON_BAD_OPTIONS: list[tuple[dict[str, Any], type[FlowexecError], str]] = [
    ({"bogus_option": 1}, ConfigError, "its options are"),
    ({"table_prefix": "ok_prefix\n"}, ValidationError, "table_prefix"),
    ({"table_prefix": "Upper"}, ValidationError, "table_prefix"),
    ({"table_prefix": "x" * 41}, ValidationError, "table_prefix"),
    ({"max_depth": "3"}, ValidationError, "max_depth"),
]
POSTGRES_BAD_OPTIONS: list[tuple[dict[str, Any], type[FlowexecError], str]] = [
    ({"pool_max_size": 0}, ConfigError, "pool_max_size"),
    ({"pool_min_size": -1}, ConfigError, "pool_min_size"),
    ({"pool_min_size": 5, "pool_max_size": 2}, ConfigError, "pool_max_size"),
    ({"pool_max_size": "10"}, ConfigError, "pool_max_size"),
    ({"connect_timeout_s": 0}, ConfigError, "connect_timeout_s"),
    ({"connect_timeout_s": math.inf}, ConfigError, "connect_timeout_s"),
    ({"busy_timeout_ms": 10}, ConfigError, "its options are"),
]


@pytest.mark.parametrize(("options", "error", "words"), COMMON_BAD_OPTIONS)
async def test_bad_store_options_on_both_backends(
    store_url: str, options: dict[str, Any], error: type[FlowexecError], words: str
) -> None:
    with pytest.raises(error) as info:
        await open_store(store_url, **{"table_prefix": "hardening_opts_", **options})
    assert words in str(info.value)


@pytest.mark.parametrize(("options", "error", "words"), POSTGRES_BAD_OPTIONS)
async def test_bad_postgres_options_are_config_errors(
    postgres_url: str, options: dict[str, Any], error: type[FlowexecError], words: str
) -> None:
    with pytest.raises(error) as info:
        await open_store(postgres_url, table_prefix="hardening_opts_", **options)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://", "names no database"),
        ("postgresql://127.0.0.1:5432", "names no database"),
        ("postgresql://127.0.0.1:5432/", "names no database"),
        ("host=127.0.0.1 user=root", "not a database URL"),
        ("postgresql://h/db?password=x\udcff", "not valid UTF-8"),
        ("sqlite:///bad\udcffname.db", "not valid UTF-8"),
        (f"sqlite:///{'n' * 5000}.db", "cannot open SQLite database"),
        (f"sqlite:///{'d' * 300}/x.db", "cannot open SQLite database"),
    ],
)
async def test_bad_urls_are_config_errors(
    url: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGDATABASE", raising=False)
    with pytest.raises(ConfigError) as info:
        await open_store(url)
    assert words in str(info.value)


async def test_a_url_without_a_database_migrates_nothing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq would pick the database named after the user; nobody chose to migrate that."""
    monkeypatch.delenv("PGDATABASE", raising=False)
    prefix = "hardening_nodb_"
    without_database = urlsplit(postgres_url)._replace(path="").geturl()
    try:
        with pytest.raises(ConfigError):
            await open_store(without_database, table_prefix=prefix)
        assert snapshot(postgres_url, prefix) == {}
    finally:
        drop_prefixed_tables(postgres_url, prefix)


@pytest.mark.parametrize("seconds", ["5", "abc", math.nan, math.inf, -1.0, [5]])
async def test_client_wait_takes_seconds_only(store: ExecutionStore, seconds: Any) -> None:
    client = Client(store)
    execution_id = await client.create("flow", owner_id="owner", start=False)
    with pytest.raises(ValidationError) as info:
        await client.wait(execution_id, timeout=seconds)
    assert "timeout" in str(info.value)


async def test_no_file_is_left_by_a_refused_open(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        await open_store(f"sqlite:///{tmp_path / 'x.db'}", bogus_option=1)
    with pytest.raises(ConfigError):
        await open_store(f"sqlite:///{tmp_path / ('n' * 5000)}.db")
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - one listing of a test directory
