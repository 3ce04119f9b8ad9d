"""A worker's entry in the worker registry: registered at start, kept alive by the heartbeat
that renews its leases (one statement for both), removed at a graceful stop.

The registry is for people and tools (`flowexec workers`, `stats`, `submit`'s check); no run
depends on it, so a registry write that fails is logged and the worker carries on. A worker
the recovery sweep removed as dead (its heartbeat stalled past `ttl_ms`) learns it from its
next heartbeat and registers again (docs/architecture.md §6).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from flowexec.errors import StoreUnavailable
from flowexec.model.workers import WorkerRegistration
from flowexec.runtime.logs import BoundLogger
from flowexec.runtime.settings import WorkerSettings
from flowexec.store.protocol import ExecutionStore
from flowexec.version import __version__

PRESENCE_HEARTBEATS = 3
"""A worker is live for this many heartbeats after its last one (and at least one lease)."""


def presence_ttl_ms(settings: WorkerSettings) -> int:
    """How long a worker stays live without a heartbeat: as long as its leases would last."""
    return max(settings.claim_timeout_ms, PRESENCE_HEARTBEATS * settings.heartbeat_interval_ms)


class WorkerPresence:
    def __init__(
        self,
        store: ExecutionStore,
        *,
        worker_id: str,
        flow_ids: Sequence[str],
        settings: WorkerSettings,
        log: BoundLogger,
    ) -> None:
        self._store = store
        self._registration = WorkerRegistration(
            worker_id=worker_id,
            host=socket.gethostname()[:255] or "host",
            pid=os.getpid(),
            flow_ids=tuple(flow_ids),
            concurrency=settings.concurrency,
            version=__version__,
        )
        self._ttl_ms = presence_ttl_ms(settings)
        self._log = log

    @property
    def worker_id(self) -> str:
        return self._registration.worker_id

    async def register(self) -> None:
        try:
            await self._store.register_worker(self._registration, ttl_ms=self._ttl_ms)
        except StoreUnavailable as exc:
            self._log.warning("could not register in the worker registry (retried with the "
                              "next heartbeat): %s", exc)

    async def keep_alive(self, claims: Sequence[tuple[str, int]], lease_ms: int) -> set[str]:
        """The heartbeat: presence and leases in one statement; the leases renewed."""
        kept = await self._store.keep_worker_alive(
            self.worker_id, claims, lease_ms=lease_ms, ttl_ms=self._ttl_ms
        )
        if not kept.present:
            self._log.warning("this worker was not in the worker registry: registering again")
            await self.register()
        return kept.renewed

    async def leave(self) -> None:
        try:
            await self._store.remove_worker(self.worker_id)
        except StoreUnavailable as exc:
            self._log.warning("could not leave the worker registry (the recovery sweep "
                              "removes this worker once its presence expires): %s", exc)
