"""Conformance helpers: build executions, drive them along the lifecycle, read state back.

Everything here goes through the public `ExecutionStore` protocol only, so the suite runs unchanged
on every backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flowexec.model import (
    Execution,
    ExecutionClaim,
    ExecutionStatus,
    RecoveryRecord,
    UpdateExecutionStatusParams,
    new_execution,
)
from flowexec.store.protocol import ExecutionStore

FLOW = "flow-a"
OTHER_FLOW = "flow-b"
OWNER = "owner-1"
WORKER = "worker-1"
OTHER_WORKER = "worker-2"
RECOVERER = "recoverer-1"
LONG_LEASE_MS = 60_000
SHORT_LEASE_MS = 100

StoreFactory = Callable[..., Awaitable[ExecutionStore]]
"""The project's `store_factory` fixture: opens another store (own connections) on the test's db."""

S = ExecutionStatus
TERMINAL = (S.COMPLETED, S.FAILED, S.STOPPED)

# ---------------------------------------------------------------- time


def assert_utc(value: datetime | None, what: str = "datetime") -> None:
    """A datetime the store returned is timezone-aware and in UTC."""
    assert isinstance(value, datetime), f"{what} is {value!r}, not a datetime"
    assert value.tzinfo is not None, f"{what} {value!r} is naive"
    assert value.utcoffset() == timedelta(0), f"{what} {value!r} is not UTC"


def assert_times_utc(obj: Any) -> None:
    """Every datetime field of a returned dataclass is timezone-aware UTC."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, datetime):
            assert_utc(value, f"{type(obj).__name__}.{f.name}")
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            assert_times_utc(value)


async def wait_until_past(
    store: ExecutionStore, moment: datetime, *, limit_s: float = 10.0
) -> None:
    """Sleep until the *database* clock is past `moment` (never the local clock, for leases)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        now = await store.now()
        if now > moment:
            return
        assert loop.time() < deadline, f"database clock never passed {moment} (now {now})"
        await asyncio.sleep(min(0.05, (moment - now).total_seconds() + 0.005))


async def wait_for_lease_end(store: ExecutionStore, claim: ExecutionClaim) -> None:
    await wait_until_past(store, claim.expires_at)


# ---------------------------------------------------------------- building executions


def build_root(
    *,
    flow_id: str = FLOW,
    owner_id: str = OWNER,
    created_at: datetime | None = None,
    **kwargs: Any,
) -> Execution:
    execution = new_execution(flow_id, owner_id, **kwargs)
    if created_at is not None:
        execution = dataclasses.replace(execution, created_at=created_at, updated_at=created_at)
    return execution


def build_child(parent: Execution, **kwargs: Any) -> Execution:
    return new_execution(parent.flow_id, parent.owner_id, parent=parent, **kwargs)


async def create_root(store: ExecutionStore, *, start: bool = True, **kwargs: Any) -> Execution:
    execution = build_root(**kwargs)
    await store.create(execution, start=start)
    return execution


async def create_child(
    store: ExecutionStore, parent: Execution, *, start: bool = True, **kwargs: Any
) -> Execution:
    execution = build_child(parent, **kwargs)
    await store.create(execution, start=start)
    return execution


async def create_chain(store: ExecutionStore, length: int) -> list[Execution]:
    """A root and `length - 1` descendants, each the child of the previous one."""
    chain = [await create_root(store)]
    for _ in range(length - 1):
        chain.append(await create_child(store, chain[-1]))
    return chain


# ---------------------------------------------------------------- claims and status


async def claim(
    store: ExecutionStore,
    execution_id: str,
    worker_id: str = WORKER,
    timeout_ms: int = LONG_LEASE_MS,
) -> ExecutionClaim:
    result = await store.claim_execution(execution_id, worker_id, timeout_ms)
    assert result is not None, f"{worker_id} could not claim {execution_id}"
    return result


def status_params(
    execution_id: str,
    status: ExecutionStatus,
    fence: ExecutionClaim | None = None,
    **kwargs: Any,
) -> UpdateExecutionStatusParams:
    return UpdateExecutionStatusParams(
        execution_id=execution_id,
        status=status,
        worker_id=None if fence is None else fence.worker_id,
        epoch=None if fence is None else fence.epoch,
        **kwargs,
    )


def fenced(
    execution_id: str, status: ExecutionStatus, worker_id: str, epoch: int, **kwargs: Any
) -> UpdateExecutionStatusParams:
    return UpdateExecutionStatusParams(
        execution_id=execution_id, status=status, worker_id=worker_id, epoch=epoch, **kwargs
    )


async def set_status(
    store: ExecutionStore,
    execution_id: str,
    status: ExecutionStatus,
    fence: ExecutionClaim | None = None,
    **kwargs: Any,
) -> bool:
    return await store.update_execution_status(status_params(execution_id, status, fence, **kwargs))


async def start_running(
    store: ExecutionStore,
    *,
    worker_id: str = WORKER,
    timeout_ms: int = LONG_LEASE_MS,
    **create_kwargs: Any,
) -> tuple[Execution, ExecutionClaim]:
    """A new root, claimed by `worker_id` and moved to `running` under that claim."""
    execution = await create_root(store, **create_kwargs)
    lease = await claim(store, execution.id, worker_id, timeout_ms)
    assert await set_status(store, execution.id, S.RUNNING, lease)
    return execution, lease


# The path (unfenced, no claim) that brings a new execution to each status.
PATH_TO = {
    S.CREATED: [],
    S.RUNNING: [S.RUNNING],
    S.PAUSED: [S.RUNNING, S.PAUSED],
    S.COMPLETED: [S.RUNNING, S.COMPLETED],
    S.FAILED: [S.RUNNING, S.FAILED],
    S.STOPPED: [S.RUNNING, S.STOPPED],
}


async def make_in_status(store: ExecutionStore, status: ExecutionStatus, **kwargs: Any) -> str:
    """A new root brought to `status` by unfenced (operator) updates; it holds no claim."""
    execution = await create_root(store, **kwargs)
    for step in PATH_TO[status]:
        assert await set_status(store, execution.id, step)
    got = await store.get(execution.id)
    assert got is not None and got.status is status
    return execution.id


async def get_existing(store: ExecutionStore, execution_id: str) -> Execution:
    got = await store.get(execution_id)
    assert got is not None, f"execution {execution_id} is missing"
    return got


async def live_claim_ids(store: ExecutionStore) -> set[str]:
    return {c.execution_id for c in await store.get_active_claims()}


# ---------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class Snapshot:
    executions: dict[str, Execution | None]
    claims: dict[str, ExecutionClaim | None]
    histories: dict[str, list[RecoveryRecord]]
    active_claims: list[ExecutionClaim]
    counts_by_status: dict[str, int]


async def snapshot(store: ExecutionStore, ids: Iterable[str]) -> Snapshot:
    """Everything a write could have touched, read back through the protocol."""
    ids = list(ids)
    stats = await store.get_stats()
    return Snapshot(
        executions={i: await store.get(i) for i in ids},
        claims={i: await store.get_claim_for_execution(i) for i in ids},
        histories={i: sorted(await store.get_recovery_history(i), key=lambda r: r.id) for i in ids},
        active_claims=sorted(
            await store.get_active_claims(), key=lambda c: (c.execution_id, c.epoch)
        ),
        counts_by_status={k: v for k, v in stats.counts_by_status.items() if v},
    )


@dataclass(frozen=True)
class World:
    """A small populated store for checks that bad input changes nothing."""

    root: Execution
    child: Execution
    queued: Execution
    paused_id: str
    lease: ExecutionClaim

    @property
    def ids(self) -> list[str]:
        return [self.root.id, self.child.id, self.queued.id, self.paused_id]


async def build_world(store: ExecutionStore) -> World:
    root, lease = await start_running(store)
    child = await create_child(store, root, integration={"k": [1, 2]})
    queued = await create_root(store, flow_id=OTHER_FLOW)
    paused_id = await make_in_status(store, S.PAUSED)
    await store.record_recovery(root.id, "recoverer", "manual_check", "running", WORKER)
    return World(root=root, child=child, queued=queued, paused_id=paused_id, lease=lease)


async def lapsed_and_released(store: ExecutionStore) -> dict[str, int]:
    """Two queued executions whose claims are dead, one lapsed and one released: their ids,
    each with the epoch its next claim must get."""
    lapsed = await create_root(store)
    released = await create_root(store)
    lapsed_lease = await claim(store, lapsed.id, timeout_ms=SHORT_LEASE_MS)
    released_lease = await claim(store, released.id)
    assert await store.release_execution(released.id, WORKER)
    await wait_for_lease_end(store, lapsed_lease)
    return {lapsed.id: lapsed_lease.epoch + 1, released.id: released_lease.epoch + 1}
