"""The PostgreSQL store's own options, their defaults and their checks, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Literal

from flowexec.errors import ConfigError
from flowexec.store.options import check_int_option, check_option_names, check_seconds_option
from flowexec.store.urls import SESSION_URL_ENV

MAX_POOL_SIZE = 1000
MAX_CONNECT_TIMEOUT_S = 3600
MAX_POLL_INTERVAL_S = 60.0

Pooler = Literal["auto", "transaction", "session", "none"]
POOLERS: tuple[Pooler, ...] = ("auto", "transaction", "session", "none")


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """`pool_min_size` / `pool_max_size`: the connection pool's bounds; `connect_timeout_s`:
    how long (whole seconds, as libpq takes them) opening the store waits for the server.

    `pooler`: what sits between the store and the server (docs/scaling.md). `"transaction"`:
    a transaction pooler (PgBouncer's `pool_mode = transaction`), so no prepared statements and
    no LISTEN on the URL; `"session"` / `"none"`: a session pooler or a direct connection;
    `"auto"` (the default) finds out at open (store/postgres/pooling.py).
    `session_url`: a direct or session-pooled URL for LISTEN (default
    `$FLOWEXEC_SESSION_DATABASE_URL`). `poll_interval_s`: the longest a waiter sleeps when no
    LISTEN works.
    """

    pool_min_size: int = 1
    pool_max_size: int = 10
    connect_timeout_s: int = 10
    pooler: Pooler = "auto"
    session_url: str | None = None
    poll_interval_s: float = 0.25

    def __post_init__(self) -> None:
        check_int_option(self.pool_min_size, "pool_min_size", 0, MAX_POOL_SIZE)
        check_int_option(self.pool_max_size, "pool_max_size", 1, MAX_POOL_SIZE)
        if self.pool_max_size < self.pool_min_size:
            raise ConfigError(
                f"pool_max_size ({self.pool_max_size}) must be at least pool_min_size "
                f"({self.pool_min_size})"
            )
        check_int_option(self.connect_timeout_s, "connect_timeout_s", 1, MAX_CONNECT_TIMEOUT_S)
        if self.pooler not in POOLERS:
            raise ConfigError(
                f"pooler must be one of {', '.join(POOLERS)}, got {self.pooler!r:.40}"
            )
        if self.session_url is not None and not isinstance(self.session_url, str):
            raise ConfigError(f"session_url must be a URL, got {type(self.session_url).__name__}")
        check_seconds_option(self.poll_interval_s, "poll_interval_s", MAX_POLL_INTERVAL_S)

    @classmethod
    def from_keywords(cls, options: dict[str, Any]) -> PostgresOptions:
        """The options a caller passed by name; `ConfigError` names any the store lacks."""
        check_option_names("PostgreSQL", options, {f.name for f in fields(cls)})
        if options.get("session_url") is None and os.environ.get(SESSION_URL_ENV):
            options = {**options, "session_url": os.environ[SESSION_URL_ENV]}
        return cls(**options)
