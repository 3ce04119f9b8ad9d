"""Checks on every input: ids, numbers, texts, times, JSON; and the limits they enforce.

Each check returns the value it accepted (normalised where that helps) or raises
`ValidationError` naming the input, so callers check and assign in one line.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
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
MAX_JSON_DEPTH = 256
"""Arrays and objects nested deeper are refused: SQLite's JSON functions stop at 1000 levels,
and Python's own parser at its recursion limit."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What neither backend can store the same way: NUL (PostgreSQL's text and jsonb refuse it) and
lone surrogates (not Unicode, so not UTF-8)."""
REPLACEMENT_CHARACTER = "\ufffd"


def _unstorable_problem(value: str) -> str | None:
    """What makes `value` unstorable, named without quoting it; None when it is storable."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character"
    return "contains a lone surrogate (text that is not valid Unicode)"


def storable_text(value: str, max_length: int = MAX_REASON_LENGTH) -> str:
    """A diagnostic the runtime writes (an exception's text): made storable on both backends
    by replacing NUL and lone surrogates, and cut to `max_length`."""
    return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, value)[:max_length]


def check_id(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise ValidationError(f"{name} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(f"{name} is {len(value)} characters; the limit is {MAX_ID_LENGTH}")
    if _CONTROL.search(value) or value != value.strip():
        raise ValidationError(f"{name} must not contain control characters or surrounding spaces")
    problem = _unstorable_problem(value)
    if problem is not None:
        raise ValidationError(f"{name} {problem}")
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
    if not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
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
    problem = _unstorable_problem(value)
    if problem is not None:
        raise ValidationError(f"{name} {problem}")
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
    if not isinstance(value, str) or not _PREFIX.fullmatch(value):
        raise ValidationError(
            f"table_prefix {value!r:.60} must be lower-case letters, digits and underscores, "
            "starting with a letter or underscore, at most 40 characters"
        )
    return value


def check_json(value: object, name: str) -> str:
    """Serialise to canonical JSON text, after checking that both backends store the value
    alike (docs/architecture.md §8). Messages name the problem, never the contents."""
    _check_json_tree(value, name)
    try:
        text = json.dumps(value, allow_nan=False, sort_keys=True, separators=(",", ":"))
    except ValueError:  # an integer beyond Python's digit limit for conversion to text
        raise ValidationError(
            f"{name} is not JSON-serialisable: it holds an integer too long to write"
        ) from None
    if len(text.encode()) > MAX_JSON_BYTES:
        raise ValidationError(f"{name} is larger than {MAX_JSON_BYTES} bytes of JSON")
    return text


def _check_json_tree(value: object, name: str) -> None:
    """Walk the value without recursion, so that deep nesting is a refusal, not a crash."""
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if item is None or isinstance(item, bool | int):
            continue
        if isinstance(item, str):
            _check_json_string(item, name, "a string")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(
                    f"{name} is not JSON-serialisable: it holds NaN or an infinite number"
                )
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ValidationError(
                    f"{name} nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"
                )
            children = item.values() if isinstance(item, dict) else item
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        raise ValidationError(
                            f"{name} is not JSON-serialisable: it has a {type(key).__name__} "
                            "key, and JSON keys are strings"
                        )
                    _check_json_string(key, name, "a key")
            pending.extend((child, depth + 1) for child in children)
        else:
            raise ValidationError(
                f"{name} is not JSON-serialisable: it holds a {type(item).__name__} (tuples, "
                "sets, bytes and objects are not JSON)"
            )


def _check_json_string(text: str, name: str, what: str) -> None:
    problem = _unstorable_problem(text)
    if problem is not None:
        raise ValidationError(f"{name}: {what} in it {problem}")


def json_normal_form(value: JSON) -> JSON:
    """The value as both databases compare JSON: numbers by their decimal value, so that
    `1e23` equals the `100000000000000000000000` PostgreSQL's jsonb gives back for it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, dict):
        return {key: json_normal_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_normal_form(item) for item in value]
    return value


def check_epoch(value: object) -> int:
    return check_int_range(value, "epoch", 1, (1 << 63) - 1)


def check_fence(worker_id: object, epoch: object) -> tuple[str, int] | None:
    """Fencing takes both a worker id and an epoch, or neither."""
    if worker_id is None and epoch is None:
        return None
    if worker_id is None or epoch is None:
        raise ValidationError("fencing needs both worker_id and epoch, or neither")
    return check_id(worker_id, "worker_id"), check_epoch(epoch)
