"""When a submitted execution runs: `--at` a moment, or `--in` a duration from now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flowexec.cli.session import UsageError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_at(text: str, what: str = "--at") -> datetime:
    """An ISO 8601 moment with its offset (`Z` for UTC), e.g. 2026-12-24T18:00Z."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{what} {text!r} is not an ISO 8601 time, e.g. 2026-12-24T18:00Z"
        ) from None
    if moment.tzinfo is None:
        raise UsageError(f"{what} {text!r} needs a time zone offset, e.g. Z or +01:00")
    return moment.astimezone(UTC)


def parse_in(text: str) -> timedelta:
    """A duration: a number of seconds, or of s, m, h or d, e.g. 90, 10m, 1.5h."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise UsageError(f"--in {text!r} is not a duration such as 30s, 10m, 2h or 1d")
    return timedelta(seconds=float(found.group(1)) * _UNIT_SECONDS[found.group(2)])
