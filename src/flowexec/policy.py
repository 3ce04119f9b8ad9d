"""Failure handling shared by the store and the runtime: backoff and the recovery policy.

Retries (the runtime) and recovery (the store) put a failed run back in the queue after the
same exponential delay; the formula, its defaults and what recovery decides live here and
nowhere else (docs/architecture.md §6).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from flowexec.model import ClaimStatus, ExecutionStatus, RecoveryReason

MAX_BACKOFF_EXPONENT = 40
"""2^40 times any positive base is past every cap we allow, so larger exponents change nothing."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """`base_ms * 2^failures_before`, capped at `max_ms`."""

    base_ms: int = 1_000
    max_ms: int = 300_000

    def ceiling_ms(self, failures_before: int) -> int:
        exponent = min(max(failures_before, 0), MAX_BACKOFF_EXPONENT)
        return min(self.base_ms * (1 << exponent), self.max_ms)

    def jittered_ms(self, failures_before: int, rng: random.Random | None = None) -> int:
        """Between half and all of the ceiling ("equal jitter"), so retries do not move in step."""
        ceiling = self.ceiling_ms(failures_before)
        if ceiling <= 0:
            return 0
        return min(int((rng or random).uniform(ceiling / 2, ceiling)), self.max_ms)


@dataclass(frozen=True, slots=True)
class RecoveryOutcome:
    """One recovered execution: its new failure count and status, the texts, the backoff."""

    failure_count: int
    status: ExecutionStatus
    last_failure_reason: str
    error_message: str | None
    """Set when recovery gives up; None keeps the execution's error message."""
    backoff_ms: int
    record_reason: str


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """How a recovery sweep treats runs whose worker died."""

    max_failures: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    batch_size: int = 100

    def outcome(self, failures_before: int, reason: str) -> RecoveryOutcome:
        """What recovering an execution whose worker died does: requeue it after the backoff,
        or fail it once this failure reaches `max_failures`."""
        count = failures_before + 1
        lost = worker_lost_reason(reason)
        gives_up = count >= self.max_failures
        return RecoveryOutcome(
            failure_count=count,
            status=ExecutionStatus.FAILED if gives_up else ExecutionStatus.CREATED,
            last_failure_reason=lost,
            error_message=recovery_error_message(count, lost) if gives_up else None,
            backoff_ms=self.backoff.ceiling_ms(failures_before),
            record_reason=RecoveryReason.MAX_FAILURES_EXCEEDED.value if gives_up else reason,
        )


DEFAULT_RECOVERY = RecoveryPolicy()
"""The defaults of `recover_executions` and of the runtime's recovery service."""


def dead_worker_reason(claim_status: str | None) -> str:
    """Why a running execution's worker counts as dead, from what is left of its claim."""
    if claim_status is None:
        return RecoveryReason.MISSING_CLAIM.value
    if claim_status == ClaimStatus.RELEASED:
        return RecoveryReason.RELEASED_WHILE_RUNNING.value
    return RecoveryReason.EXPIRED_CLAIM.value


def worker_lost_reason(reason: str) -> str:
    """`last_failure_reason` of a recovered execution, from the recovery reason."""
    return f"worker lost: {reason}"


def recovery_error_message(failure_count: int, reason: str) -> str:
    return f"gave up after {failure_count} failures; the last: {reason}"

LEADER_LEASE_INTERVALS = 3
"""A leader's lease lasts this many of its ticks, so one late tick does not lose it, and a
dead leader is replaced within about that many ticks (docs/architecture.md §6)."""

DEFAULT_LEADER_LEASE_S = 30.0
"""The lease of `try_acquire_recovery_lock` when the caller names none."""
