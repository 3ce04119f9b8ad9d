"""Bounds on what the store accepts, each named once."""

from __future__ import annotations

MAX_BATCH = 1000
"""Largest `limit` of a claiming call, most completions one `claim_and_start` writes, and the
default number of trees one `purge_finished` deletes."""

MAX_FAILURES_LIMIT = 1_000_000
MAX_BACKOFF_MS = 7 * 24 * 60 * 60 * 1000
MAX_DEPTH_LIMIT = 10_000

MIN_LOCK_ID = 0
MAX_LOCK_ID = (1 << 31) - 1
"""Recovery lock ids are non-negative 32-bit integers, so a backend may key its own locks
(the PostgreSQL migration lock) below `MIN_LOCK_ID` without colliding."""

MAX_CREATE_BATCH = 10_000
"""Most executions one `create_many` writes: one statement's parameters and one transaction."""
