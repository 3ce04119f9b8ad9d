"""A root listing resumes from a (created_at, id) pair exactly as from the row it names."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from flowexec.errors import ValidationError
from flowexec.model import new_execution
from flowexec.store.protocol import ExecutionStore


async def test_a_pair_pages_like_the_row_it_names(store: ExecutionStore) -> None:
    same_moment = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(5):
        root = dataclasses.replace(new_execution("flow", "owner"), created_at=same_moment)
        await store.create(root)
    first = await store.get_root_executions("flow", limit=2)
    last = first[-1].execution
    by_row = await store.get_root_executions("flow", limit=10, after=first[-1])
    by_pair = await store.get_root_executions("flow", limit=10, after=(last.created_at, last.id))
    assert [r.execution.id for r in by_pair] == [r.execution.id for r in by_row]
    assert len(first) + len(by_pair) == 5


@pytest.mark.parametrize(
    "after",
    [(datetime(2026, 1, 1), "EX1"), (datetime(2026, 1, 1, tzinfo=UTC), ""), ("x", "y", "z")],
)
async def test_a_malformed_pair_is_refused(store: ExecutionStore, after: object) -> None:
    with pytest.raises(ValidationError, match="after"):
        await store.get_root_executions("flow", after=after)  # type: ignore[arg-type]
