"""flowexec: durable flow executions across processes and machines."""

from __future__ import annotations

from flowexec.errors import (
    ClaimLost,
    ConfigError,
    ExecutionExists,
    ExecutionNotFound,
    FlowexecError,
    InvalidTransition,
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
from flowexec.store import ExecutionStore, open_store

__version__ = "0.1.0"

__all__ = [
    "ClaimLost",
    "ClaimStatus",
    "ConfigError",
    "Execution",
    "ExecutionClaim",
    "ExecutionExists",
    "ExecutionLimits",
    "ExecutionNotFound",
    "ExecutionOptions",
    "ExecutionStatus",
    "ExecutionStore",
    "ExecutionTreeNode",
    "FlowexecError",
    "InvalidTransition",
    "RecoveryReason",
    "RecoveryRecord",
    "RootExecution",
    "StoreStats",
    "StoreUnavailable",
    "UpdateExecutionStatusParams",
    "ValidationError",
    "__version__",
    "new_execution",
    "open_store",
]
