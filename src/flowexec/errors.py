"""Every failure a caller can cause has a type here, all under `FlowexecError`."""

from __future__ import annotations


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
    """A status change the lifecycle does not allow; nothing was changed."""

    def __init__(self, execution_id: str, current: str, target: str) -> None:
        super().__init__(
            f"execution {execution_id!r} cannot go from {current!r} to {target!r}"
        )
        self.execution_id = execution_id
        self.current = current
        self.target = target


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


class FlowNotFound(FlowexecError, LookupError):
    """No flow is registered under that id."""

    def __init__(self, flow_id: str) -> None:
        super().__init__(f"no flow is registered as {flow_id!r}")
        self.flow_id = flow_id


class ExecutionTimeout(FlowexecError, TimeoutError):
    """A wait for an execution ran out of time."""
