"""Subscribers waiting for new events, each on one execution, woken by id.

A wake-up only says "look again": the subscriber re-reads by index, so a missed or extra
wake-up costs latency at most, never an event (docs/architecture.md §5).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Iterable

SUBSCRIPTION_TTL_S = 30
"""How long a registered interest in an execution's events lasts on PostgreSQL unless renewed."""


class EventWakeups:
    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}

    def wake(self, execution_ids: Iterable[str] | None) -> None:
        """Wake the subscribers of these executions; None wakes every subscriber."""
        if execution_ids is None:
            groups: Iterable[set[asyncio.Event]] = list(self._waiting.values())
        else:
            groups = [self._waiting[i] for i in set(execution_ids) if i in self._waiting]
        for group in groups:
            for event in group:
                event.set()

    def wake_from_payload(self, payload: str) -> None:
        """A NOTIFY payload: space-separated execution ids, or empty for all."""
        self.wake(payload.split() if payload else None)

    async def wait(self, execution_id: str, timeout_s: float) -> bool:
        """True if woken, False after `timeout_s`."""
        event = asyncio.Event()
        group = self._waiting.setdefault(execution_id, set())
        group.add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            group.discard(event)
            if not group:
                self._waiting.pop(execution_id, None)


class Subscriptions:
    """The executions this store follows, and when each registration is due for renewal."""

    def __init__(self) -> None:
        self.subscriber = f"{socket.gethostname()[:64]}-{os.getpid()}-{secrets.token_hex(4)}"
        self._renew_at: dict[str, float] = {}

    def due(self, execution_id: str) -> bool:
        return self._renew_at.get(execution_id, 0.0) <= time.monotonic()

    def renewed(self, execution_id: str) -> None:
        now = time.monotonic()
        for lapsed in [i for i, at in self._renew_at.items() if at + SUBSCRIPTION_TTL_S < now]:
            del self._renew_at[lapsed]
        self._renew_at[execution_id] = now + SUBSCRIPTION_TTL_S / 2
