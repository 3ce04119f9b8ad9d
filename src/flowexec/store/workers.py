"""The worker registry's half of the store contract, once for every SQL backend.

Each worker process registers itself (`register_worker`), keeps its presence alive with the
heartbeat that renews its leases (`keep_worker_alive`: one round trip for both), and removes
itself when it stops gracefully; the recovery sweep removes the workers whose presence expired
(`remove_dead_workers`). Liveness is judged on the database clock, like leases. The backends
supply the statements (`store/<backend>/workers.py`); the checks, the row mapping and the
decisions made from the registry (which queued flows no live worker serves, whether a flow was
served recently) live here (docs/architecture.md §6).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from flowexec.errors import ValidationError
from flowexec.model import check_id, check_timeout_ms
from flowexec.model.workers import KnownFlow, WorkerInfo, WorkerRegistration
from flowexec.store import checks
from flowexec.store.primitives import SqlPrimitives
from flowexec.store.rows import Row

SERVED_RECENTLY = timedelta(days=1)
"""A flow a worker served this recently is not a typo, even if no live worker serves it now."""


@dataclass(frozen=True, slots=True)
class KeptAlive:
    """A heartbeat's answer: whether the worker is still registered, and the leases renewed."""

    present: bool
    renewed: set[str]


@runtime_checkable
class WorkerRegistry(Protocol):
    """The registry's methods of `ExecutionStore`."""

    async def register_worker(
        self, registration: WorkerRegistration, *, ttl_ms: int
    ) -> WorkerInfo:
        """Record the worker (replacing a row of the same id), live for `ttl_ms` from now on the
        database clock, and note that it serves its flows."""
        ...

    async def keep_worker_alive(
        self, worker_id: str, claims: Sequence[tuple[str, int]], *, lease_ms: int, ttl_ms: int
    ) -> KeptAlive:
        """One statement: push the worker's presence `ttl_ms` on and renew its leases
        (`extend_claims`). `present` is False when the worker is not registered (it was
        removed as dead): it should register again."""
        ...

    async def remove_worker(self, worker_id: str) -> bool:
        """A graceful stop: remove the worker; False if it was not registered."""
        ...

    async def remove_dead_workers(self, *, leader: int | None = None) -> list[str]:
        """Remove the workers whose presence expired; their ids. `leader`: as for
        `ExecutionStore.expire_old_claims`."""
        ...

    async def get_workers(self) -> list[WorkerInfo]:
        """Every registered worker, live or not yet swept, by host and start."""
        ...

    async def get_known_flows(self) -> list[KnownFlow]:
        """Every flow a worker served, with how many live workers serve it now."""
        ...

    async def get_unserved_queues(self) -> dict[str, int]:
        """Flows with queued executions that no live worker serves: their queued counts."""
        ...


def served_recently(flow_id: str, flows: Sequence[KnownFlow], now: datetime) -> bool:
    """True if a live worker serves `flow_id` or one served it within `SERVED_RECENTLY`."""
    return any(
        f.flow_id == flow_id and (f.live_workers > 0 or f.last_served_at > now - SERVED_RECENTLY)
        for f in flows
    )


class WorkerRegistryStatements(Protocol):
    """What a backend supplies: one statement or one transaction each."""

    async def register(self, params: dict[str, Any]) -> Row: ...

    async def keep_alive(
        self, worker_id: str, claims: list[tuple[str, int]], lease_ms: int, ttl_ms: int
    ) -> tuple[bool, set[str]]: ...

    async def remove(self, worker_id: str) -> bool: ...

    async def remove_dead(self) -> list[str]: ...

    async def workers(self) -> list[Row]: ...

    async def served_flows(self) -> list[Row]: ...

    async def queued_by_flow(self) -> list[Row]: ...


def worker_from_row(row: Row) -> WorkerInfo:
    return WorkerInfo(
        worker_id=row["worker_id"],
        host=row["host"],
        pid=int(row["pid"]),
        flow_ids=tuple(row["flow_ids"]),
        concurrency=int(row["concurrency"]),
        version=row["version"],
        started_at=row["started_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
        live=bool(row["live"]),
    )


class WorkerRegistryFacade(SqlPrimitives):
    _worker_registry: WorkerRegistryStatements

    async def register_worker(
        self, registration: WorkerRegistration, *, ttl_ms: int
    ) -> WorkerInfo:
        if not isinstance(registration, WorkerRegistration):
            raise ValidationError("register_worker takes a WorkerRegistration")
        r = registration.checked()
        params = {
            "worker_id": r.worker_id,
            "host": r.host,
            "pid": r.pid,
            "flow_ids": json.dumps(list(r.flow_ids)),
            "concurrency": r.concurrency,
            "version": r.version,
            "ttl_ms": check_timeout_ms(ttl_ms, "ttl_ms"),
        }
        return worker_from_row(await self._worker_registry.register(params))

    async def keep_worker_alive(
        self, worker_id: str, claims: Sequence[tuple[str, int]], *, lease_ms: int, ttl_ms: int
    ) -> KeptAlive:
        check_id(worker_id, "worker_id")
        check_timeout_ms(lease_ms, "lease_ms")
        check_timeout_ms(ttl_ms, "ttl_ms")
        pairs = checks.check_claim_pairs(worker_id, claims)
        present, renewed = await self._worker_registry.keep_alive(
            worker_id, pairs, lease_ms, ttl_ms
        )
        return KeptAlive(present, renewed)

    async def remove_worker(self, worker_id: str) -> bool:
        return await self._worker_registry.remove(check_id(worker_id, "worker_id"))

    async def remove_dead_workers(self, *, leader: int | None = None) -> list[str]:
        async with self._leading(leader) as leading:
            return await self._worker_registry.remove_dead() if leading else []

    async def get_workers(self) -> list[WorkerInfo]:
        return [worker_from_row(r) for r in await self._worker_registry.workers()]

    async def get_known_flows(self) -> list[KnownFlow]:
        live: dict[str, int] = {}
        for worker in await self.get_workers():
            if worker.live:
                for flow_id in worker.flow_ids:
                    live[flow_id] = live.get(flow_id, 0) + 1
        return [
            KnownFlow(r["flow_id"], r["last_served_at"], live.get(r["flow_id"], 0))
            for r in await self._worker_registry.served_flows()
        ]

    async def get_unserved_queues(self) -> dict[str, int]:
        served = {f for w in await self.get_workers() if w.live for f in w.flow_ids}
        return {
            r["flow_id"]: int(r["queued"])
            for r in await self._worker_registry.queued_by_flow()
            if r["flow_id"] not in served
        }
