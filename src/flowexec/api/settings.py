"""The API's bounds and switches, each with its default, checked once."""

from __future__ import annotations

from dataclasses import dataclass

from flowexec.model import check_int_range, check_positive

API_PREFIX = "/api/v1"
"""Where every route lives; the version changes only with an incompatible API."""
DEFAULT_KEEPALIVE_S = 15.0
DEFAULT_MAX_BODY_BYTES = 4 << 20
DEFAULT_MAX_STREAMS_PER_TOKEN = 16
DEFAULT_PAGE = 50
SHUTDOWN_GRACE_S = 5
"""How long a stopping server lets open requests finish. Event streams never finish on their own,
so after this they are cut, and clients reconnect (to another server) with `Last-Event-ID`."""
MAX_PAGE = 1000
"""Largest `limit` of a root listing or an event page, so one request stays one small query."""
MAX_TREE_NODES = 10_000
"""Most nodes one tree response holds (the store allows more to its own callers)."""


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """`auth=False` serves every request as an anonymous admin: only for a loopback server
    started with `--insecure-no-auth`."""

    auth: bool = True
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_streams_per_token: int = DEFAULT_MAX_STREAMS_PER_TOKEN

    def __post_init__(self) -> None:
        check_positive(self.keepalive_s, "keepalive_s")
        check_int_range(self.max_body_bytes, "max_body_bytes", 1, 1 << 30)
        check_int_range(self.max_streams_per_token, "max_streams_per_token", 1, 100_000)
