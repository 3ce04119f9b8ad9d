"""Retry delays: exponential, capped, with jitter so that failed runs do not retry in lockstep."""

from __future__ import annotations

import random


def retry_delay_ms(
    failures_before: int, *, base_ms: int, max_ms: int, rng: random.Random | None = None
) -> int:
    """Between half and all of `base * 2^failures_before` (capped at `max_ms`): "equal jitter"."""
    ceiling = min(base_ms * (1 << min(max(failures_before, 0), 40)), max_ms)
    if ceiling <= 0:
        return 0
    pick = (rng or random).uniform(ceiling / 2, ceiling)
    return min(int(pick), max_ms)
