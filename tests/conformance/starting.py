"""Helpers of the claim_and_start tests: starting one execution, and the completion of a run."""

from __future__ import annotations

import itertools
from typing import Any

from flowexec.model import Completion, StartedExecution, WorkBatch
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    LONG_LEASE_MS,
    WORKER,
    create_root,
)

EMPTY = WorkBatch(started=[], completed=frozenset())

_solo_flows = itertools.count()


def ids_of(batch: WorkBatch) -> set[str]:
    return {s.execution.id for s in batch.started}


def done(started: StartedExecution, result: Any = None) -> Completion:
    """The completion a worker sends back for a run it was started on."""
    return Completion(started.execution.id, started.claim.epoch, result)


async def start_one(
    store: ExecutionStore,
    worker_id: str = WORKER,
    timeout_ms: int = LONG_LEASE_MS,
    **create_kwargs: Any,
) -> StartedExecution:
    """A new root (in a flow of its own) started by `worker_id` through `claim_and_start`."""
    create_kwargs.setdefault("flow_id", f"solo-{next(_solo_flows)}")
    execution = await create_root(store, **create_kwargs)
    batch = await store.claim_and_start(
        worker_id, timeout_ms, flow_ids=[execution.flow_id]
    )
    assert ids_of(batch) == {execution.id}
    return batch.started[0]


async def no_claim(store: ExecutionStore, execution_id: str) -> bool:
    return await store.get_claim_for_execution(execution_id) is None
