"""Failure handling shared by the store and the runtime: backoff and the recovery policy.

Retries (the runtime) and recovery (the store) put a failed run back in the queue after the
same exponential delay; the formula and its defaults live here and nowhere else.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

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
class RecoveryPolicy:
    """How a recovery sweep treats runs whose worker died."""

    max_failures: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    batch_size: int = 100
