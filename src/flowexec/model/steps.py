"""Durable steps: the recorded result of a node that completed (docs/architecture.md §11).

A run records a checkpoint when a node completes, fenced by its claim; a later attempt of the
same execution returns the recorded result instead of running the node again.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowexec.model.checks import JSON, check_id, check_json


@dataclass(frozen=True, slots=True)
class NodeCheckpoint:
    """The JSON result a node returned, under its node id (unique within an execution)."""

    node_id: str
    result: JSON

    def checked(self) -> NodeCheckpoint:
        check_id(self.node_id, "node_id")
        check_json(self.result, f"the result of node {self.node_id!r}")
        return self

    def as_json(self) -> JSON:
        return self.result
