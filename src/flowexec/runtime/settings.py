"""The runtime's settings: one frozen object per component, the single home of its defaults.

Each object checks itself when it is built, so a component never starts on a value it cannot
use. The CLI reads its option defaults from instances built with no arguments
(`WorkerSettings()`), so that a default is written down once, here or in `flowexec.policy`.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from flowexec.errors import ValidationError
from flowexec.model import (
    MAX_TIMEOUT_MS,
    check_int_range,
    check_limit,
    check_positive,
    check_timeout_ms,
)
from flowexec.policy import Backoff, RecoveryPolicy

MAX_CONCURRENCY = 1000
MAX_FAILURES_LIMIT = 1_000_000
MAX_RUNS_LIMIT = 2**31 - 1
RECOVERY_LOCK_ID = 0x666C6F77
"""The advisory lock key ("flow"); the store namespaces it per table prefix."""
RECOVERY_INTERVAL_S = 10.0
"""How often a recovery service tries to sweep; a takeover after a leader dies costs one."""


def check_backoff(backoff: Backoff, name: str) -> Backoff:
    """`name` is the keyword prefix the caller knows, e.g. `retry_backoff`."""
    check_int_range(backoff.base_ms, f"{name}_base_ms", 0, MAX_TIMEOUT_MS)
    check_int_range(backoff.max_ms, f"{name}_max_ms", backoff.base_ms, MAX_TIMEOUT_MS)
    return backoff


def check_recovery(interval_s: float, policy: RecoveryPolicy, prefix: str) -> None:
    """The checks a recovery service's settings pass, named as the caller's keywords are."""
    check_positive(interval_s, f"{prefix}interval_s")
    check_int_range(policy.max_failures, f"{prefix}max_failures", 1, MAX_FAILURES_LIMIT)
    check_limit(policy.batch_size, f"{prefix}batch_size")
    check_backoff(policy.backoff, f"{prefix}backoff")


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    """How a `RecoveryService` sweeps: how often, with what policy, and under which lock."""

    interval_s: float = RECOVERY_INTERVAL_S
    policy: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    max_batches_per_sweep: int = 100
    lock_id: int = RECOVERY_LOCK_ID

    def __post_init__(self) -> None:
        check_recovery(self.interval_s, self.policy, prefix="")
        check_limit(self.max_batches_per_sweep, "max_batches_per_sweep")

    @classmethod
    def of(
        cls,
        base: RecoverySettings | None = None,
        *,
        max_failures: int | None = None,
        backoff_base_ms: int | None = None,
        backoff_max_ms: int | None = None,
        batch_size: int | None = None,
        **fields: Any,
    ) -> RecoverySettings:
        """`base` (or the defaults) with the `RecoveryService` keywords applied: the policy's
        parts may be given one by one."""
        start = base or cls()
        backoff = dataclasses.replace(
            start.policy.backoff, **_given(base_ms=backoff_base_ms, max_ms=backoff_max_ms)
        )
        policy = dataclasses.replace(
            start.policy,
            backoff=backoff,
            **_given(max_failures=max_failures, batch_size=batch_size),
        )
        return dataclasses.replace(start, policy=policy, **fields)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a `Worker` claims, keeps and gives back its runs.

    `claim_timeout_ms` is the length of a run's lease; heartbeats renew it every
    `heartbeat_interval_ms`. `poll_interval_s` is how often the claim loop looks for work when
    no wake-up arrives (None: the backend's own default). Retries wait `retry_backoff`; the
    recovery service, when `recovery` is on, sweeps every `recovery_interval_s` with
    `recovery_policy`. `max_runs` (None: no limit) stops the worker gracefully once it has
    started that many runs, so that a supervisor replaces the process (recycling what a
    long-lived process accumulates: leaked memory, stale state of libraries).
    """

    concurrency: int = 10
    claim_timeout_ms: int = 30_000
    heartbeat_interval_ms: int = 5_000
    shutdown_grace_s: float = 30.0
    poll_interval_s: float | None = None
    control_interval_s: float = 0.25
    retry_backoff: Backoff = field(default_factory=Backoff)
    recovery: bool = True
    recovery_interval_s: float = RECOVERY_INTERVAL_S
    recovery_policy: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    install_signal_handlers: bool = True
    max_runs: int | None = None

    def __post_init__(self) -> None:
        check_int_range(self.concurrency, "concurrency", 1, MAX_CONCURRENCY)
        check_timeout_ms(self.claim_timeout_ms, "claim_timeout_ms")
        check_int_range(
            self.heartbeat_interval_ms,
            "heartbeat_interval_ms",
            1,
            max(self.claim_timeout_ms - 1, 1),
        )
        if self.heartbeat_interval_ms >= self.claim_timeout_ms:
            raise ValidationError("heartbeat_interval_ms must be shorter than claim_timeout_ms")
        check_positive(self.shutdown_grace_s, "shutdown_grace_s", allow_zero=True)
        if self.poll_interval_s is not None:
            check_positive(self.poll_interval_s, "poll_interval_s")
        check_positive(self.control_interval_s, "control_interval_s")
        check_backoff(self.retry_backoff, "retry_backoff")
        check_recovery(self.recovery_interval_s, self.recovery_policy, prefix="recovery_")
        if self.max_runs is not None:
            check_int_range(self.max_runs, "max_runs", 1, MAX_RUNS_LIMIT)

    @property
    def recovery_settings(self) -> RecoverySettings | None:
        """What the worker's recovery service runs with; None when recovery is off."""
        if not self.recovery:
            return None
        return RecoverySettings(interval_s=self.recovery_interval_s, policy=self.recovery_policy)

    @classmethod
    def of(cls, base: WorkerSettings | None = None, **keywords: Any) -> WorkerSettings:
        """`base` (or the defaults) with the `Worker` keywords applied.

        `retry_backoff_base_ms`/`retry_backoff_max_ms` build `retry_backoff`, which the
        recovery policy shares unless it is given; `recovery_max_failures` sets the policy's
        `max_failures`.
        """
        start = base or cls()
        base_ms = keywords.pop("retry_backoff_base_ms", None)
        max_ms = keywords.pop("retry_backoff_max_ms", None)
        max_failures = keywords.pop("recovery_max_failures", None)
        retry_backoff = keywords.pop("retry_backoff", start.retry_backoff)
        retry_backoff = dataclasses.replace(retry_backoff, **_given(base_ms=base_ms, max_ms=max_ms))
        policy_given = "recovery_policy" in keywords
        policy = keywords.pop("recovery_policy", start.recovery_policy)
        if retry_backoff != start.retry_backoff and not policy_given:
            policy = dataclasses.replace(policy, backoff=retry_backoff)
        if max_failures is not None:
            policy = dataclasses.replace(policy, max_failures=max_failures)
        return dataclasses.replace(
            start, retry_backoff=retry_backoff, recovery_policy=policy, **keywords
        )


WORKER_KEYWORDS = frozenset(
    {f.name for f in dataclasses.fields(WorkerSettings)}
    | {"retry_backoff_base_ms", "retry_backoff_max_ms", "recovery_max_failures"}
)
"""The `Worker` keywords that are settings; the Worker passes any other keyword to the store."""


def _given(**values: Any) -> dict[str, Any]:
    """The keywords that were given (not None)."""
    return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What a run needs from its worker's configuration."""

    max_depth: int
    retry_backoff: Backoff
    rng: random.Random
