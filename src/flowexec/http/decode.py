"""The API's JSON back into the model's objects, and its problems back into typed errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowexec.errors import (
    ApiRefused,
    ExecutionExists,
    ExecutionNotFound,
    FlowexecError,
    FlowNotFound,
    InvalidTransition,
    StoreUnavailable,
    ValidationError,
)
from flowexec.model import (
    Execution,
    ExecutionEvent,
    ExecutionOptions,
    ExecutionStatus,
    ExecutionTreeNode,
)
from flowexec.runtime.client import InvalidItem

PROBLEM_TYPE_BASE = "urn:flowexec:problem:"
"""Every problem's `type` is this plus a kind (`execution-not-found`, ...), on server and client."""


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def execution_from_json(data: dict[str, Any]) -> Execution:
    return Execution(
        id=data["id"],
        flow_id=data["flow_id"],
        owner_id=data["owner_id"],
        root_execution_id=data["root_execution_id"],
        parent_execution_id=data["parent_execution_id"],
        status=ExecutionStatus(data["status"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        started_at=_time(data["started_at"]),
        completed_at=_time(data["completed_at"]),
        error_message=data["error_message"],
        error_node_id=data["error_node_id"],
        execution_depth=data["execution_depth"],
        options=ExecutionOptions.parse(data["options"]),
        integration=data["integration"],
        external_events=data["external_events"],
        failure_count=data["failure_count"],
        last_failure_reason=data["last_failure_reason"],
        last_failure_at=_time(data["last_failure_at"]),
        processing_started_at=_time(data["processing_started_at"]),
        processing_worker_id=data["processing_worker_id"],
        available_at=_time(data["available_at"]),
        result=data.get("result"),
    )


def tree_node_from_json(data: dict[str, Any]) -> ExecutionTreeNode:
    return ExecutionTreeNode(
        id=data["id"],
        parent_id=data["parent_id"],
        level=data["level"],
        execution=execution_from_json(data["execution"]),
    )


def event_from_json(data: dict[str, Any]) -> ExecutionEvent:
    return ExecutionEvent(
        execution_id=data["execution_id"],
        index=data["index"],
        type=data["type"],
        at=datetime.fromisoformat(data["at"]),
        attempt=data["attempt"],
        data=data["data"],
    )


def error_from_problem(status: int, body: object) -> FlowexecError:
    """The error the database `Client` would have raised, from a problem+json body."""
    problem = body if isinstance(body, dict) else {}
    kind = str(problem.get("type", "")).removeprefix(PROBLEM_TYPE_BASE)
    detail = str(problem.get("detail", f"the API answered HTTP {status}"))
    if kind == "execution-not-found":
        return ExecutionNotFound(str(problem.get("execution_id", "")))
    if kind == "flow-not-found":
        return FlowNotFound(str(problem.get("flow_id", "")))
    if kind == "invalid-transition":
        return InvalidTransition(
            str(problem.get("execution_id", "")),
            ExecutionStatus(problem["current"]),
            ExecutionStatus(problem["target"]),
        )
    if kind == "execution-exists":
        return ExecutionExists(str(problem.get("execution_id", "")), problem["differences"])
    if kind == "invalid-input" and "index" in problem:
        return InvalidItem(int(problem["index"]), str(problem["reason"]))
    simple: dict[str, type[FlowexecError]] = {
        "invalid-input": ValidationError,
        "invalid-request": ValidationError,
        "store-unavailable": StoreUnavailable,
    }
    if kind in simple:
        return simple[kind](detail)
    return ApiRefused(status, kind or "http-error", detail)
