"""`get_roots_in_status`: roots in one status across flows (or of one flow), newest first,
keyset-paginated, with their tree aggregates; children never listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flowexec.errors import ValidationError
from flowexec.model import ExecutionStatus
from flowexec.store.protocol import ExecutionStore

from .helpers import FLOW, OTHER_FLOW, create_child, create_root, set_status

S = ExecutionStatus
BASE = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


async def _failed_root(store: ExecutionStore, flow_id: str, minute: int) -> str:
    root = await create_root(store, flow_id=flow_id, created_at=BASE + timedelta(minutes=minute))
    assert await set_status(store, root.id, S.RUNNING)
    assert await set_status(store, root.id, S.FAILED, error_message="boom")
    return root.id


async def test_roots_in_a_status_across_flows_newest_first(store: ExecutionStore) -> None:
    first = await _failed_root(store, FLOW, 1)
    second = await _failed_root(store, OTHER_FLOW, 2)
    third = await _failed_root(store, FLOW, 3)
    queued = await create_root(store, flow_id=FLOW, created_at=BASE + timedelta(minutes=4))
    child = await create_child(store, queued)
    assert await set_status(store, child.id, S.RUNNING)
    assert await set_status(store, child.id, S.FAILED)  # a failed child is no root
    third_root = await store.get(third)
    assert third_root is not None
    await create_child(store, third_root)

    every = await store.get_roots_in_status("failed")
    assert [r.execution.id for r in every] == [third, second, first]
    assert [r.total_nested for r in every] == [1, 0, 0]
    page = await store.get_roots_in_status("failed", 2)
    rest = await store.get_roots_in_status("failed", 2, page[-1])
    assert [r.execution.id for r in page + rest] == [third, second, first]
    of_flow = await store.get_roots_in_status(S.FAILED, flow_id=FLOW)
    assert [r.execution.id for r in of_flow] == [third, first]
    assert [r.execution.id for r in await store.get_roots_in_status("created")] == [queued.id]
    assert await store.get_roots_in_status("paused") == []


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("queued",), {}), ((None,), {}), (("failed", 0), {}), (("failed",), {"flow_id": ""}),
     (("failed", 10, "yesterday"), {})],
)
async def test_bad_arguments_are_validation_errors(
    store: ExecutionStore, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValidationError):
        await store.get_roots_in_status(*args, **kwargs)  # type: ignore[arg-type]
