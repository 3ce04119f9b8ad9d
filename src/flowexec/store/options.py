"""What the backends' option checks share: unknown names are a `ConfigError` that lists the
options the backend does take."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from flowexec.errors import ConfigError

SHARED_OPTIONS = ("table_prefix", "max_depth")
"""Options every store takes, checked by the shared layer."""


def check_option_names(backend: str, options: Mapping[str, Any], own: Collection[str]) -> None:
    unknown = sorted(set(options) - set(own))
    if unknown:
        known = sorted(set(own) | set(SHARED_OPTIONS))
        raise ConfigError(
            f"the {backend} store does not take {', '.join(unknown)}; "
            f"its options are {', '.join(known)}"
        )


def check_int_option(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer {low}..{high}, got {value!r:.40}")
    return value


def check_seconds_option(value: object, name: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise ConfigError(f"{name} must be a number in (0, {high:g}], got {value!r:.40}")
    return float(value)
