"""flowexec: durable flow executions across processes and machines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowexec.lazy import lazy_exports
from flowexec.version import __version__

if TYPE_CHECKING:
    from flowexec.errors import (
        ClaimLost,
        ConfigError,
        DepthLimitExceeded,
        ExecutionExists,
        ExecutionNotCompleted,
        ExecutionNotFound,
        ExecutionTimeout,
        Fail,
        FlowexecError,
        FlowNotFound,
        FlowTimeout,
        InvalidTransition,
        NodeTimeout,
        StoreUnavailable,
        ValidationError,
    )
    from flowexec.model import (
        ClaimStatus,
        Completion,
        EventBatch,
        EventType,
        Execution,
        ExecutionClaim,
        ExecutionEvent,
        ExecutionLimits,
        ExecutionOptions,
        ExecutionStatus,
        ExecutionTreeNode,
        FlowQueueStats,
        NewEvent,
        RecoveryReason,
        RecoveryRecord,
        RootExecution,
        StartedExecution,
        StoreStats,
        UpdateExecutionStatusParams,
        WorkBatch,
        new_execution,
    )
    from flowexec.runtime import App, Client, FlowContext, FlowEvent, Worker
    from flowexec.store import ExecutionStore, open_store

_HOMES = {
    "flowexec.errors": (
        "ClaimLost",
        "ConfigError",
        "DepthLimitExceeded",
        "ExecutionExists",
        "ExecutionNotCompleted",
        "ExecutionNotFound",
        "ExecutionTimeout",
        "Fail",
        "FlowexecError",
        "FlowNotFound",
        "FlowTimeout",
        "InvalidTransition",
        "NodeTimeout",
        "StoreUnavailable",
        "ValidationError",
    ),
    "flowexec.model": (
        "ClaimStatus",
        "Completion",
        "EventBatch",
        "EventType",
        "Execution",
        "ExecutionClaim",
        "ExecutionEvent",
        "ExecutionLimits",
        "ExecutionOptions",
        "ExecutionStatus",
        "ExecutionTreeNode",
        "FlowQueueStats",
        "NewEvent",
        "RecoveryReason",
        "RecoveryRecord",
        "RootExecution",
        "StartedExecution",
        "StoreStats",
        "UpdateExecutionStatusParams",
        "WorkBatch",
        "new_execution",
    ),
    "flowexec.runtime": ("App", "Client", "FlowContext", "FlowEvent", "Worker"),
    "flowexec.store": ("ExecutionStore", "open_store"),
}
"""Where each public name lives; imported on first use, so `import flowexec` (and the command
line's `--version`) costs next to nothing."""

__getattr__ = lazy_exports(
    globals(), {name: module for module, names in _HOMES.items() for name in names}
)

__all__ = [
    "App",
    "ClaimLost",
    "ClaimStatus",
    "Client",
    "Completion",
    "ConfigError",
    "DepthLimitExceeded",
    "EventBatch",
    "EventType",
    "Execution",
    "ExecutionClaim",
    "ExecutionEvent",
    "ExecutionExists",
    "ExecutionLimits",
    "ExecutionNotCompleted",
    "ExecutionNotFound",
    "ExecutionOptions",
    "ExecutionStatus",
    "ExecutionStore",
    "ExecutionTimeout",
    "ExecutionTreeNode",
    "Fail",
    "FlowContext",
    "FlowEvent",
    "FlowNotFound",
    "FlowQueueStats",
    "FlowTimeout",
    "FlowexecError",
    "InvalidTransition",
    "NewEvent",
    "NodeTimeout",
    "RecoveryReason",
    "RecoveryRecord",
    "RootExecution",
    "StartedExecution",
    "StoreStats",
    "StoreUnavailable",
    "UpdateExecutionStatusParams",
    "ValidationError",
    "WorkBatch",
    "Worker",
    "__version__",
    "new_execution",
    "open_store",
]
