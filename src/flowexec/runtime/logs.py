"""Structured logging: every runtime line carries the ids an operator greps for.

The ids travel as `extra` fields on the log record (so any handler or log shipper can use
them); the two formatters here render them as `key=value` pairs or as one JSON object a line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("worker_id", "execution_id", "flow_id", "node_id", "epoch")
"""The record attributes flowexec binds, in the order the formatters print them."""


class BoundLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that adds its bound fields to every record, merged with any call's `extra`."""

    def __init__(self, logger: logging.Logger, fields: Mapping[str, object] | None = None) -> None:
        super().__init__(logger, dict(fields or {}))

    @property
    def fields(self) -> dict[str, object]:
        return dict(self.extra or {})

    def bind(self, **fields: object) -> BoundLogger:
        return BoundLogger(self.logger, {**self.fields, **fields})

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**self.fields, **(kwargs.get("extra") or {})}
        return msg, kwargs


def bound(name: str, **fields: object) -> BoundLogger:
    return BoundLogger(logging.getLogger(name), fields)


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {k: getattr(record, k) for k in CONTEXT_FIELDS if getattr(record, k, None) is not None}


def _one_line(text: str) -> str:
    """Line breaks as `\\n`, so that one message is one line for `grep` and log shippers."""
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


class KeyValueFormatter(logging.Formatter):
    """`2024-01-01T00:00:00.000Z INFO flowexec.worker message worker_id=w1 execution_id=EX…`,
    one line per record whatever its message; a traceback follows as one quoted `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [when.replace("+00:00", "Z"), record.levelname, record.name, record.getMessage()]
        parts += [f"{k}={v}" for k, v in _context(record).items()]
        if record.exc_info:
            parts.append("exception=" + json.dumps(self.formatException(record.exc_info)))
        return _one_line(" ".join(parts))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int | str = logging.INFO, *, json_lines: bool = False) -> None:
    """Send flowexec's logs to stderr in one of the structured formats (for CLIs and scripts)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    logger = logging.getLogger("flowexec")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
