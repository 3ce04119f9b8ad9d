"""What a flow's run came to, and how a failure is described in its event and the log."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from flowexec.errors import ExecutionExists, Fail, FlowNotFound, FlowTimeout, ValidationError
from flowexec.model import JSON, storable_text, trimmed_traceback
from flowexec.runtime.steps import Suspended

NOT_RETRYABLE = (Fail, ValidationError, FlowNotFound, ExecutionExists)
"""Failures that another attempt cannot change: the execution fails at once."""


@dataclass(frozen=True, slots=True)
class Returned:
    value: JSON


@dataclass(frozen=True, slots=True)
class Raised:
    error: BaseException
    node_id: str | None


Outcome = Returned | Raised | Suspended


def failure_details(error: BaseException) -> dict[str, JSON]:
    """What a failure event carries besides its message: the exception's type and formatted
    traceback (the flow's own frames included), trimmed to the innermost
    `MAX_TRACEBACK_CHARS`."""
    text = "".join(traceback.format_exception(error))
    text = storable_text(text, len(text))  # it may quote the very value that could not be stored
    return {
        "type": type(error).__name__,
        "traceback": trimmed_traceback(text),
    }


def traceback_lines(details: dict[str, JSON] | None) -> str:
    """The traceback after a log line's message, on lines of its own."""
    text = None if details is None else details.get("traceback")
    return "\n" + text.rstrip() if isinstance(text, str) else ""


def describe_error(error: BaseException, node_id: str | None) -> str:
    text = str(error)
    what = type(error).__name__ + (f": {text}" if text else "")
    if node_id is not None and not isinstance(error, FlowTimeout):
        what = f"node {node_id!r} raised {what}"
    return storable_text(what)
