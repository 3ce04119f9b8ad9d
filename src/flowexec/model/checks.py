"""Checks on every input: ids, numbers, texts, times, JSON; and the limits they enforce.

Each check returns the value it accepted (normalised where that helps) or raises
`ValidationError` naming the input, so callers check and assign in one line.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from flowexec.errors import ValidationError

JSON = Any
"""A value that survives `json.dumps` / `json.loads` unchanged."""

DEFAULT_TABLE_PREFIX = "flowexec_"
"""The prefix of flowexec's tables when none is given: one installation per prefix."""
MAX_ID_LENGTH = 255
MAX_TIMEOUT_MS = 24 * 60 * 60 * 1000
MAX_LIMIT = 10_000
MAX_TREE_NODES = 1_000_000
DEFAULT_TREE_NODES = 10_000
DEFAULT_MAX_DEPTH = 100
MAX_JSON_BYTES = 1 << 20
MAX_REASON_LENGTH = 4096

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


def check_id(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise ValidationError(f"{name} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(f"{name} is {len(value)} characters; the limit is {MAX_ID_LENGTH}")
    if _CONTROL.search(value) or value != value.strip():
        raise ValidationError(
            f"{name} {value!r} must not contain control characters or surrounding spaces"
        )
    return value


def check_int_range(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """A real number above 0 (or at least 0): durations and intervals in seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{name} must be a number, not {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        wanted = "at least 0" if allow_zero else "positive"
        raise ValidationError(f"{name} must be {wanted}, got {value}")
    return float(value)


def check_timeout_ms(value: object, name: str = "timeout_ms") -> int:
    return check_int_range(value, name, 1, MAX_TIMEOUT_MS)


def check_limit(value: object, name: str = "limit", high: int = MAX_LIMIT) -> int:
    return check_int_range(value, name, 1, high)



def check_text(value: object, name: str, *, max_length: int = MAX_REASON_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise ValidationError(f"{name} is {len(value)} characters; the limit is {max_length}")
    return value


def check_optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    return check_text(value, name, max_length=MAX_JSON_BYTES)


def check_datetime(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def check_table_prefix(value: object) -> str:
    if not isinstance(value, str) or not _PREFIX.match(value):
        raise ValidationError(
            f"table_prefix {value!r} must be lower-case letters, digits and underscores, "
            "starting with a letter or underscore, at most 40 characters"
        )
    return value


def check_json(value: object, name: str) -> str:
    """Serialise to canonical JSON text; anything that does not round-trip is rejected."""
    try:
        text = json.dumps(value, allow_nan=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} is not JSON-serialisable: {exc}") from None
    if len(text.encode()) > MAX_JSON_BYTES:
        raise ValidationError(f"{name} is larger than {MAX_JSON_BYTES} bytes of JSON")
    if json.loads(text) != value:
        raise ValidationError(f"{name} does not survive a JSON round trip (tuples, non-str keys?)")
    return text


def check_epoch(value: object) -> int:
    return check_int_range(value, "epoch", 1, (1 << 63) - 1)


def check_fence(worker_id: object, epoch: object) -> tuple[str, int] | None:
    """Fencing takes both a worker id and an epoch, or neither."""
    if worker_id is None and epoch is None:
        return None
    if worker_id is None or epoch is None:
        raise ValidationError("fencing needs both worker_id and epoch, or neither")
    return check_id(worker_id, "worker_id"), check_epoch(epoch)
