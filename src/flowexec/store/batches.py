"""`create_many`'s batch: checked once for both backends, then settled against what is stored.

A batch is written all or nothing (docs/architecture.md §2). Inside its transaction a backend
inserts every execution that is absent and whose ancestry in the batch hangs from nothing (a
root) or from a stored execution where the batch says (its anchor, as `create` checks a
parent); `settle` then decides over the rest, before the commit: an id stored with the same
content was a safe retry, one stored with other content raises `ExecutionExists`, and what was
refused for want of its anchor raises `BatchRefused`, which rolls the transaction back for the
facade to say why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flowexec.errors import ExecutionExists, ValidationError
from flowexec.model import Execution, check_child_of, check_new_execution
from flowexec.store.checks import check_sequence
from flowexec.store.commands import ParamEncoding
from flowexec.store.limits import MAX_CREATE_BATCH
from flowexec.store.rows import Row, encode_new_execution, execution_from_row


class BatchRefused(Exception):
    """Some executions of a batch were refused for want of their parent; nothing was written."""

    def __init__(self, refused: list[Execution]) -> None:
        super().__init__(f"{len(refused)} executions of the batch were refused")
        self.refused = refused


@dataclass(frozen=True, slots=True)
class CreateBatch:
    """Distinct executions, each checked as `create` checks it; parents first, then by id."""

    executions: list[Execution]

    def params(self, encoding: ParamEncoding) -> list[dict[str, Any]]:
        """Each execution's insert parameters, `create`'s names, times as the backend binds
        them, and its anchor: the stored execution its ancestry in the batch hangs from
        (`anchor_id` and the depth it must have; None for a tree rooted in the batch)."""
        anchors: dict[str, tuple[str, int] | None] = {}
        rows = []
        for e in self.executions:  # parents first
            parent = e.parent_execution_id
            anchor = anchors[parent] if parent in anchors else (
                None if parent is None else (parent, e.execution_depth - 1)
            )
            anchors[e.id] = anchor
            rows.append({
                **encode_new_execution(e),
                "created_at": encoding.time(e.created_at),
                "updated_at": encoding.time(e.updated_at),
                "run_at": None if e.available_at is None else encoding.time(e.available_at),
                "anchor_id": None if anchor is None else anchor[0],
                "anchor_depth": None if anchor is None else anchor[1],
            })
        return rows

    def json_rows(self, encoding: ParamEncoding) -> str:
        """The parameters as one JSON array of objects: one bound value for the whole batch."""
        return json.dumps(self.params(encoding))

    def not_inserted(self, inserted: set[str]) -> list[str]:
        return [e.id for e in self.executions if e.id not in inserted]

    def keys_not_inserted(self, inserted: set[str]) -> list[tuple[str, str]]:
        """(flow_id, idempotency_key) of the keyed executions the insert left out."""
        return [
            (e.flow_id, e.idempotency_key)
            for e in self.executions
            if e.id not in inserted and e.idempotency_key is not None
        ]

    def settle(self, inserted: set[str], stored: list[Row]) -> None:
        """Inside the batch's transaction: may it commit, given what was not inserted?

        `stored` holds the rows, read after the insert, of ids the insert left out and of
        the idempotency keys they carry. An execution whose key another one holds is left
        out, as `create` leaves it out.
        """
        rows = {row["id"]: row for row in stored}
        keyed = {(row["flow_id"], row["idempotency_key"]) for row in stored}
        refused = []
        for e in self.executions:
            if e.id in inserted:
                continue
            row = rows.get(e.id)
            if row is None:
                if (e.flow_id, e.idempotency_key) not in keyed:
                    refused.append(e)
                continue
            differences = e.content_differences(execution_from_row(row))
            if differences:
                raise ExecutionExists(e.id, differences)
        if refused:
            raise BatchRefused(refused)


def check_create_batch(executions: Sequence[Execution], *, max_depth: int) -> CreateBatch:
    """Every execution as `create` checks it, and the batch as a whole: its size, ids listed
    twice (the same content counts once, other content is a `ValidationError`) and the tree
    fields of children whose parent is in the batch."""
    check_sequence(executions, "create_many takes a sequence of Execution")
    if len(executions) > MAX_CREATE_BATCH:
        raise ValidationError(
            f"create_many takes at most {MAX_CREATE_BATCH} executions at once, "
            f"not {len(executions)}"
        )
    distinct: dict[str, Execution] = {}
    for e in (check_new_execution(item, max_depth=max_depth) for item in executions):
        first = distinct.setdefault(e.id, e)
        differences = e.content_differences(first)
        if differences:
            raise ValidationError(
                f"the batch lists execution {e.id!r} twice, with different "
                + ", ".join(differences)
            )
    for e in distinct.values():
        parent = None if e.parent_execution_id is None else distinct.get(e.parent_execution_id)
        if parent is not None:
            check_child_of(e, parent)
    return CreateBatch(sorted(distinct.values(), key=lambda e: (e.execution_depth, e.id)))
