"""Both backends implement the same primitives, and neither adds public methods of its own."""

from __future__ import annotations

import pytest

from flowexec.store.base import SqlExecutionStore
from flowexec.store.postgres import PostgresExecutionStore
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.protocol import ExecutionStore
from flowexec.store.sqlite import SqliteExecutionStore

BACKENDS = [PostgresExecutionStore, SqliteExecutionStore]
PRIMITIVES = SqlExecutionStore.__abstractmethods__
"""The core primitives and those of the feature facades (e.g. store/scheduling.py)."""
CONSTRUCTORS = {"open"}


def _public_methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


def _protocol_members() -> set[str]:
    return {name for name in dir(ExecutionStore) if not name.startswith("_")}


def test_the_facade_leaves_only_the_primitives_to_a_backend() -> None:
    assert SqlPrimitives.__abstractmethods__ <= PRIMITIVES
    private = {name for name in PRIMITIVES if name.startswith("_")}
    assert private, "the primitives are the backend's private half"
    assert PRIMITIVES - private <= _protocol_members()


def _defined_by(cls: type, name: str) -> type:
    """The class in `cls`'s MRO whose body defines `name`: a backend may split its primitives
    over modules of its own package."""
    return next(base for base in cls.__mro__ if name in vars(base))


@pytest.mark.parametrize("cls", BACKENDS, ids=lambda cls: cls.backend)
def test_each_backend_implements_every_primitive_itself(cls: type[SqlExecutionStore]) -> None:
    assert not cls.__abstractmethods__
    own = {  # the backend's class and its feature modules beside it, not the shared layer
        name
        for klass in cls.__mro__
        if klass.__module__.startswith(f"flowexec.store.{cls.backend}.")
        for name in vars(klass)
    }
    missing = {name for name in PRIMITIVES if name not in own}
    assert not missing, f"{cls.__name__} inherits {missing} instead of implementing them"


@pytest.mark.parametrize("cls", BACKENDS, ids=lambda cls: cls.backend)
def test_no_backend_adds_public_methods_the_protocol_lacks(cls: type[SqlExecutionStore]) -> None:
    assert _public_methods(cls) - _protocol_members() == CONSTRUCTORS

