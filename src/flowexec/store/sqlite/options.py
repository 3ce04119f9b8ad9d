"""The SQLite store's own options, their defaults and their checks, in one place."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from flowexec.errors import ConfigError

SYNCHRONOUS_MODES = ("full", "normal")
MAX_BUSY_TIMEOUT_MS = 600_000
MAX_LOCK_TIMEOUT_S = 3600
MAX_COMMIT_POLL_INTERVAL_S = 60
SHARED_OPTIONS = ("table_prefix", "max_depth")
"""Options every store takes, checked by the shared layer."""


def _check_seconds(value: object, name: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise ConfigError(f"{name} must be a number in (0, {high:g}], got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class SqliteOptions:
    """`busy_timeout_ms`: SQLite's own wait for a lock; `lock_timeout_s`: how long a
    transaction keeps retrying after that before `StoreUnavailable`; `synchronous`: `full`
    (fsync every commit, the durable default) or `normal` (WAL, fsync at checkpoints);
    `commit_poll_interval_s`: how often `wait_for_work` looks for other connections' commits.
    """

    busy_timeout_ms: int = 5000
    lock_timeout_s: float = 60.0
    synchronous: str = "full"
    commit_poll_interval_s: float = 0.1

    def __post_init__(self) -> None:
        busy = self.busy_timeout_ms
        if isinstance(busy, bool) or not isinstance(busy, int) or not (
            0 <= busy <= MAX_BUSY_TIMEOUT_MS
        ):
            raise ConfigError(
                f"busy_timeout_ms must be an integer 0..{MAX_BUSY_TIMEOUT_MS}, got {busy!r}"
            )
        _check_seconds(self.lock_timeout_s, "lock_timeout_s", MAX_LOCK_TIMEOUT_S)
        _check_seconds(
            self.commit_poll_interval_s, "commit_poll_interval_s", MAX_COMMIT_POLL_INTERVAL_S
        )
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise ConfigError(
                f"synchronous must be one of {SYNCHRONOUS_MODES}, got {self.synchronous!r}"
            )

    @classmethod
    def from_keywords(cls, options: dict[str, Any]) -> SqliteOptions:
        """The options a caller passed by name; `ConfigError` names any the store lacks."""
        own = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - own)
        if unknown:
            known = sorted(own | set(SHARED_OPTIONS))
            raise ConfigError(
                f"the SQLite store does not take {', '.join(unknown)}; "
                f"its options are {', '.join(known)}"
            )
        return cls(**options)
