"""Fixtures of the conformance suite, on top of the project-wide ones in tests/conftest.py."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from flowexec.store.protocol import ExecutionStore
from tests.conftest import POOLED_ROUTES, drop_prefixed_tables

from .helpers import StoreFactory


@pytest.fixture(params=POOLED_ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    """The whole contract holds through a transaction pooler too."""
    return str(request.param)


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
