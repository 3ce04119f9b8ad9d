"""`expected_status`: a status write that applies only from the status the caller saw."""

from __future__ import annotations

import pytest

from flowexec.errors import InvalidTransition, ValidationError
from flowexec.model import ExecutionStatus, UpdateExecutionStatusParams, new_execution
from flowexec.store.protocol import ExecutionStore

S = ExecutionStatus


async def running_execution(store: ExecutionStore) -> str:
    execution = new_execution("flow", "owner")
    await store.create(execution)
    claim = await store.claim_execution(execution.id, "w", 60_000)
    assert claim is not None
    await store.update_execution_status(
        UpdateExecutionStatusParams(execution.id, S.RUNNING, worker_id="w", epoch=claim.epoch)
    )
    return execution.id


async def test_resume_applies_only_to_a_paused_execution(store: ExecutionStore) -> None:
    execution_id = await running_execution(store)
    resume = UpdateExecutionStatusParams(execution_id, S.RUNNING, expected_status=S.PAUSED)
    with pytest.raises(InvalidTransition, match="is running: it cannot be resumed"):
        await store.update_execution_status(resume)

    await store.update_execution_status(
        UpdateExecutionStatusParams(execution_id, S.PAUSED, expected_status=S.RUNNING)
    )
    assert await store.update_execution_status(resume)
    after = await store.get(execution_id)
    assert after is not None and after.status is S.RUNNING


async def test_a_requeued_execution_is_not_resumed(store: ExecutionStore) -> None:
    """The race the guard closes: recovery requeued it after the caller saw it paused."""
    execution_id = await running_execution(store)
    await store.update_execution_status(UpdateExecutionStatusParams(execution_id, S.PAUSED))
    await store.update_execution_status(UpdateExecutionStatusParams(execution_id, S.CREATED))

    with pytest.raises(InvalidTransition):
        await store.update_execution_status(
            UpdateExecutionStatusParams(execution_id, S.RUNNING, expected_status=S.PAUSED)
        )
    unchanged = await store.get(execution_id)
    assert unchanged is not None
    assert unchanged.status is S.CREATED
    assert unchanged.processing_worker_id is None


async def test_an_expected_status_that_can_never_lead_there_is_bad_input(
    store: ExecutionStore,
) -> None:
    execution_id = await running_execution(store)
    with pytest.raises(ValidationError, match="expected_status"):
        await store.update_execution_status(
            UpdateExecutionStatusParams(execution_id, S.RUNNING, expected_status=S.COMPLETED)
        )
    with pytest.raises(ValidationError, match="expected_status"):
        await store.update_execution_status(
            UpdateExecutionStatusParams(
                execution_id,
                S.PAUSED,
                expected_status="sleeping",  # type: ignore[arg-type]
            )
        )
    still = await store.get(execution_id)
    assert still is not None and still.status is S.RUNNING
