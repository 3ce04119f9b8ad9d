"""Durable steps' half of the `ExecutionStore` contract, once for every SQL backend.

A run records the results of its completed nodes with its events (`append_events`, one
statement or transaction per batch, fenced by the claim: docs/architecture.md §11); a later
attempt reads them all in one query when it first needs one.
"""

from __future__ import annotations

from collections.abc import Sequence

from flowexec.errors import ValidationError
from flowexec.model import JSON, NodeCheckpoint, check_id
from flowexec.store.primitives import SqlPrimitives


def checked_checkpoints(
    execution_id: str, checkpoints: Sequence[object]
) -> tuple[NodeCheckpoint, ...]:
    """The checkpoints of one batch: each a `NodeCheckpoint` with an id and a JSON result,
    no node id twice."""
    if not isinstance(checkpoints, tuple | list):
        raise ValidationError("EventBatch.checkpoints must be a tuple of NodeCheckpoint")
    checked: list[NodeCheckpoint] = []
    for checkpoint in checkpoints:
        if not isinstance(checkpoint, NodeCheckpoint):
            raise ValidationError(
                f"EventBatch.checkpoints takes NodeCheckpoint items, not "
                f"{type(checkpoint).__name__}"
            )
        checked.append(checkpoint.checked())
    if len({c.node_id for c in checked}) != len(checked):
        raise ValidationError(f"a batch for {execution_id!r} records one node id twice")
    return tuple(checked)


class CheckpointFacade(SqlPrimitives):
    async def get_checkpoints(self, execution_id: str) -> dict[str, JSON]:
        check_id(execution_id, "execution_id")
        return {row["node_id"]: row["result"] for row in await self._checkpoint_rows(execution_id)}
