"""Fixtures of the conformance suite, on top of the project-wide ones in tests/conftest.py."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from flowexec.store.protocol import ExecutionStore

from .helpers import StoreFactory

_ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


def _root_conftest() -> ModuleType:
    """tests/conftest.py as a module (`tests.conftest` is not importable from every rootdir)."""
    spec = importlib.util.spec_from_file_location("_flowexec_tests_conftest", _ROOT_CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drop_prefixed_tables(url: str, prefix: str) -> None:
    _root_conftest().drop_prefixed_tables(url, prefix)


@pytest.fixture
async def other_store(store: ExecutionStore, store_factory: StoreFactory) -> ExecutionStore:
    """A second store (its own connections) on the same database and table prefix as `store`."""
    return await store_factory()


@pytest.fixture
def fresh_prefixes(backend: str, store_url: str, unique_prefix: str) -> Iterator[Callable[[], str]]:
    """New table prefixes on the test's database, for code that opens stores in its own event loop.

    Every prefix starts with `unique_prefix`; their tables are dropped after the test.
    """
    counter = itertools.count()

    def new_prefix() -> str:
        return f"{unique_prefix}h{next(counter)}_"

    yield new_prefix
    if backend == "postgres":
        drop_prefixed_tables(store_url, unique_prefix)
