"""Input checks of the store's entry points that the model's field checks do not cover."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from flowexec.errors import ValidationError
from flowexec.model import (
    JSON,
    TERMINAL_STATUSES,
    Completion,
    ExecutionStatus,
    can_transition,
    check_epoch,
    check_event_data,
    check_fence,
    check_id,
    check_int_range,
    check_status,
    sources_of,
)
from flowexec.store.commands import CompletionWrite, Fence
from flowexec.store.limits import (
    MAX_BACKOFF_MS,
    MAX_BATCH,
    MAX_FAILURES_LIMIT,
    MAX_LOCK_ID,
    MIN_LOCK_ID,
)
from flowexec.store.rows import encode_json


def check_sequence(value: object, what: str) -> None:
    """One string, None or a number where a sequence belongs is a caller's mistake."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ValidationError(f"{what}, not {type(value).__name__}")


def check_finished_statuses(statuses: object) -> list[str]:
    """Which finished statuses retention may remove: all of them (None), or those named."""
    if statuses is None:
        return sorted(s.value for s in TERMINAL_STATUSES)
    check_sequence(statuses, "statuses takes a sequence of finished statuses")
    checked = {check_status(s, "statuses item") for s in cast(Sequence[object], statuses)}
    if not checked:
        raise ValidationError("statuses names no status: give None for every finished one")
    unfinished = sorted(s.value for s in checked if not s.is_terminal)
    if unfinished:
        raise ValidationError(
            f"statuses may only name finished statuses (completed, failed, stopped), "
            f"not {', '.join(unfinished)}"
        )
    return sorted(s.value for s in checked)


def status_sources(target: ExecutionStatus, expected: object) -> list[str]:
    """The statuses a status write may start from: all legal ones, or just the expected one."""
    if expected is None:
        return sources_of(target)
    current = check_status(expected, "expected_status")
    if not can_transition(current, target):
        raise ValidationError(
            f"expected_status {current.value!r} can never move to {target.value!r}"
        )
    return [current.value]


def check_flow_ids(flow_ids: Sequence[str] | None) -> list[str] | None:
    if flow_ids is None:
        return None
    check_sequence(flow_ids, "flow_ids takes a sequence of flow ids")
    return [check_id(f, "flow_id") for f in flow_ids]


def check_completions(complete: Sequence[Completion]) -> list[CompletionWrite]:
    check_sequence(complete, "complete takes a sequence of Completion")
    if len(complete) > MAX_BATCH:
        raise ValidationError(f"complete takes at most {MAX_BATCH} completions at once")
    completions = [_check_completion(c) for c in complete]
    if len({c.execution_id for c in completions}) < len(completions):
        raise ValidationError("complete lists an execution more than once")
    return completions


def _check_completion(completion: object) -> CompletionWrite:
    if not isinstance(completion, Completion):
        raise ValidationError(
            f"complete takes Completion objects, not {type(completion).__name__}"
        )
    return CompletionWrite(
        execution_id=check_id(completion.execution_id, "execution_id"),
        epoch=check_epoch(completion.epoch),
        result_json=encode_json(completion.result, "result"),
    )


def check_claim_pairs(worker_id: str, claims: Sequence[tuple[str, int]]) -> list[Fence]:
    check_sequence(claims, "extend_claims takes a sequence of (execution_id, epoch) pairs")
    pairs: list[Fence] = []
    for pair in claims:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValidationError("extend_claims takes (execution_id, epoch) pairs")
        fence = required_fence(worker_id, pair[1])
        pairs.append((check_id(pair[0], "execution_id"), fence[1]))
    return pairs


def required_fence(worker_id: object, epoch: object) -> Fence:
    """A (worker_id, epoch) pair where both halves are required."""
    fence = check_fence(worker_id, epoch)
    assert fence is not None, "check_fence rejects a missing half"
    return fence


def check_max_failures(value: object) -> int:
    return check_int_range(value, "max_failures", 1, MAX_FAILURES_LIMIT)


def check_failure_count(value: object) -> int:
    return check_int_range(value, "failure_count", 0, MAX_FAILURES_LIMIT)


def check_backoff_ms(value: object, name: str) -> int:
    return check_int_range(value, name, 0, MAX_BACKOFF_MS)


def check_lock_id(value: object) -> int:
    return check_int_range(value, "lock_id", MIN_LOCK_ID, MAX_LOCK_ID)


def event_details(data: object) -> dict[str, JSON] | None:
    """Extra fields of a lifecycle event (`event_data`): a JSON object, or None."""
    return None if data is None else check_event_data(data, "event_data")
