"""Every failure a caller can cause has a type here, all under `FlowexecError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model imports this module for ValidationError
    from flowexec.model import ExecutionStatus


class FlowexecError(Exception):
    """Base of every error flowexec raises on purpose."""


class ConfigError(FlowexecError):
    """A URL, option or setting that flowexec cannot work with."""


class ValidationError(FlowexecError, ValueError):
    """Input that breaks the contract; nothing was written."""


class ExecutionNotFound(FlowexecError, LookupError):
    """The named execution does not exist."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"execution {execution_id!r} does not exist")
        self.execution_id = execution_id


class ExecutionExists(FlowexecError):
    """`create` was given an id that exists with different content."""

    def __init__(self, execution_id: str, differences: list[str]) -> None:
        fields = ", ".join(differences)
        super().__init__(
            f"execution {execution_id!r} already exists with different {fields}"
        )
        self.execution_id = execution_id
        self.differences = differences


class InvalidTransition(FlowexecError):
    """A status change the lifecycle does not allow; nothing was changed.

    The message names the status the execution is in and what was asked of it in a user's
    words (`resumed`, `started`), never a status that does not exist; `required` is the one
    status the request could have moved, when it had one.
    """

    def __init__(
        self,
        execution_id: str,
        current: ExecutionStatus,
        target: ExecutionStatus,
        *,
        action: str | None = None,
        required: ExecutionStatus | None = None,
    ) -> None:
        asked = action or _asked_action(target, required)
        final = ", which is final" if current.is_terminal else ""
        only = "" if required is None else f" (only a {required.value} execution can be)"
        super().__init__(
            f"execution {execution_id!r} is {current.value}{final}: it cannot be {asked}{only}"
        )
        self.execution_id = execution_id
        self.current = current
        self.target = target
        self.required = required


_ACTIONS_BY_TARGET = {
    "running": "run",
    "paused": "paused",
    "created": "queued again",
    "completed": "completed",
    "failed": "marked failed",
    "stopped": "stopped",
}
"""What a status write to each status asks, in the words of the command that asks it."""


def _asked_action(target: ExecutionStatus, required: ExecutionStatus | None) -> str:
    if target.value == "running" and required is not None and required.value == "paused":
        return "resumed"
    return _ACTIONS_BY_TARGET[target.value]


class ClaimLost(FlowexecError):
    """A fenced write came from a worker that no longer holds the execution."""

    def __init__(self, execution_id: str, worker_id: str, epoch: int) -> None:
        super().__init__(
            f"worker {worker_id!r} no longer holds execution {execution_id!r} "
            f"(claim epoch {epoch} is stale or released)"
        )
        self.execution_id = execution_id
        self.worker_id = worker_id
        self.epoch = epoch


class StoreUnavailable(FlowexecError):
    """The database cannot be reached or read."""


class ApiRefused(FlowexecError):
    """The HTTP API refused a request for a reason of its own (no or a revoked token, a
    forbidden owner, a body or stream limit), with the problem's HTTP status and type."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.kind = kind
        self.detail = detail


class FlowNotFound(FlowexecError, LookupError):
    """No flow is registered under that id."""

    def __init__(self, flow_id: str) -> None:
        super().__init__(f"no flow is registered as {flow_id!r}")
        self.flow_id = flow_id


class ExecutionTimeout(FlowexecError, TimeoutError):
    """A wait for an execution ran out of time; the execution itself is untouched."""

    def __init__(self, execution_id: str, status: ExecutionStatus, timeout_s: float) -> None:
        super().__init__(
            f"execution {execution_id!r} is still {status.value} after {timeout_s:g} s"
        )
        self.execution_id = execution_id
        self.status = status
        self.timeout_s = timeout_s


class ExecutionNotCompleted(FlowexecError):
    """`result` was asked of an execution that did not complete (yet)."""

    def __init__(
        self,
        execution_id: str,
        status: str,
        error_message: str | None = None,
        error_node_id: str | None = None,
    ) -> None:
        detail = ""
        if error_message:
            detail = f": {error_message}"
            if error_node_id:
                detail += f" (node {error_node_id!r})"
        super().__init__(f"execution {execution_id!r} is {status}, not completed{detail}")
        self.execution_id = execution_id
        self.status = status
        self.error_message = error_message
        self.error_node_id = error_node_id


class Fail(FlowexecError):
    """Raised by flow code to fail the execution at once: no retry, whatever `max_retries` says."""

    def __init__(self, message: str = "the flow failed", *, node_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id


class NodeTimeout(FlowexecError, TimeoutError):
    """A node ran longer than the execution's `node_timeout_ms`."""

    def __init__(self, node_id: str, timeout_ms: int) -> None:
        super().__init__(f"node {node_id!r} timed out after {timeout_ms} ms")
        self.node_id = node_id
        self.timeout_ms = timeout_ms


class FlowTimeout(FlowexecError, TimeoutError):
    """A run took longer than the execution's `flow_timeout_ms` (time spent paused excluded)."""

    def __init__(self, execution_id: str, timeout_ms: int) -> None:
        super().__init__(f"execution {execution_id!r} timed out after {timeout_ms} ms")
        self.execution_id = execution_id
        self.timeout_ms = timeout_ms


class DepthLimitExceeded(ValidationError):
    """`emit` would nest a child deeper than the store's maximum depth."""

    def __init__(self, execution_id: str, depth: int, max_depth: int) -> None:
        super().__init__(
            f"execution {execution_id!r} is at depth {depth}: its children would be at depth "
            f"{depth + 1}, over the limit of {max_depth} nested executions"
        )
        self.execution_id = execution_id
        self.depth = depth
        self.max_depth = max_depth
