"""A claimed execution is not available before its lease ends, so the queue never walks over it.

Without this, every claimed-but-not-yet-started execution stays at the front of the runnable
index and each `claim_next` pays for all of them (found by the 2,000-execution drain race).
"""

from __future__ import annotations

from flowexec.model import new_execution
from flowexec.store.protocol import ExecutionStore


async def test_claiming_moves_availability_to_the_end_of_the_lease(store: ExecutionStore) -> None:
    execution = new_execution("flow", "owner")
    await store.create(execution)
    [claim] = await store.claim_next("w", 60_000)
    claimed = await store.get(execution.id)
    assert claimed is not None
    assert claimed.available_at == claim.expires_at

    extended = await store.claim_execution(execution.id, "w", 120_000)
    assert extended is not None and extended.epoch == claim.epoch + 1
    reclaimed = await store.get(execution.id)
    assert reclaimed is not None and reclaimed.available_at == extended.expires_at


async def test_releasing_makes_it_available_at_once(store: ExecutionStore) -> None:
    execution = new_execution("flow", "owner")
    await store.create(execution)
    [claim] = await store.claim_next("w", 60_000)
    assert await store.release_execution(execution.id, "w", epoch=claim.epoch)
    released = await store.get(execution.id)
    assert released is not None and released.available_at is not None
    assert released.available_at <= await store.now()
    [again] = await store.claim_next("other", 60_000)
    assert (again.execution_id, again.epoch) == (execution.id, claim.epoch + 1)
