"""The SQLite store's own options, their defaults and their checks, in one place."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from flowexec.errors import ConfigError
from flowexec.store.options import check_int_option, check_option_names, check_seconds_option

SYNCHRONOUS_MODES = ("full", "normal")
MAX_BUSY_TIMEOUT_MS = 600_000
MAX_LOCK_TIMEOUT_S = 3600
MAX_COMMIT_POLL_INTERVAL_S = 60


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
        check_int_option(self.busy_timeout_ms, "busy_timeout_ms", 0, MAX_BUSY_TIMEOUT_MS)
        check_seconds_option(self.lock_timeout_s, "lock_timeout_s", MAX_LOCK_TIMEOUT_S)
        check_seconds_option(
            self.commit_poll_interval_s, "commit_poll_interval_s", MAX_COMMIT_POLL_INTERVAL_S
        )
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise ConfigError(
                f"synchronous must be one of {SYNCHRONOUS_MODES}, got {self.synchronous!r:.40}"
            )

    @classmethod
    def from_keywords(cls, options: dict[str, Any]) -> SqliteOptions:
        """The options a caller passed by name; `ConfigError` names any the store lacks."""
        check_option_names("SQLite", options, {f.name for f in fields(cls)})
        return cls(**options)
