"""The PostgreSQL store's own options, their defaults and their checks, in one place."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from flowexec.errors import ConfigError
from flowexec.store.options import check_int_option, check_option_names

MAX_POOL_SIZE = 1000
MAX_CONNECT_TIMEOUT_S = 3600


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """`pool_min_size` / `pool_max_size`: the connection pool's bounds; `connect_timeout_s`:
    how long (whole seconds, as libpq takes them) opening the store waits for the server."""

    pool_min_size: int = 1
    pool_max_size: int = 10
    connect_timeout_s: int = 10

    def __post_init__(self) -> None:
        check_int_option(self.pool_min_size, "pool_min_size", 0, MAX_POOL_SIZE)
        check_int_option(self.pool_max_size, "pool_max_size", 1, MAX_POOL_SIZE)
        if self.pool_max_size < self.pool_min_size:
            raise ConfigError(
                f"pool_max_size ({self.pool_max_size}) must be at least pool_min_size "
                f"({self.pool_min_size})"
            )
        check_int_option(self.connect_timeout_s, "connect_timeout_s", 1, MAX_CONNECT_TIMEOUT_S)

    @classmethod
    def from_keywords(cls, options: dict[str, Any]) -> PostgresOptions:
        """The options a caller passed by name; `ConfigError` names any the store lacks."""
        check_option_names("PostgreSQL", options, {f.name for f in fields(cls)})
        return cls(**options)
