"""flowexec: durable flow executions across processes and machines."""

from __future__ import annotations

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
    Execution,
    ExecutionClaim,
    ExecutionLimits,
    ExecutionOptions,
    ExecutionStatus,
    ExecutionTreeNode,
    RecoveryReason,
    RecoveryRecord,
    RootExecution,
    StoreStats,
    UpdateExecutionStatusParams,
    new_execution,
)
from flowexec.runtime import App, Client, FlowContext, FlowEvent, Worker
from flowexec.store import ExecutionStore, open_store

__version__ = "0.1.0"

__all__ = [
    "App",
    "ClaimLost",
    "ClaimStatus",
    "Client",
    "ConfigError",
    "DepthLimitExceeded",
    "Execution",
    "ExecutionClaim",
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
    "FlowTimeout",
    "FlowexecError",
    "InvalidTransition",
    "NodeTimeout",
    "RecoveryReason",
    "RecoveryRecord",
    "RootExecution",
    "StoreStats",
    "StoreUnavailable",
    "UpdateExecutionStatusParams",
    "ValidationError",
    "Worker",
    "__version__",
    "new_execution",
    "open_store",
]
