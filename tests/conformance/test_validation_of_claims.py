"""Bad input to claims, failures, recovery and operations (docs/architecture.md §8): a typed error
with a clear message, and the database unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowexec import open_store
from flowexec.errors import ConfigError, FlowexecError, ValidationError
from flowexec.model import (
    MAX_REASON_LENGTH,
    MAX_TIMEOUT_MS,
)
from flowexec.store.protocol import ExecutionStore

from .helpers import (
    FLOW,
    WORKER,
    build_world,
)
from .rejections import (
    BAD_IDS,
    BAD_LIMITS,
    BAD_TIMEOUTS,
    LONG_ID,
    NAIVE,
    Call,
    check_rejected,
    each,
)

# ---------------------------------------------------------------- claims


async def test_claim_arguments_are_validated(store: ExecutionStore) -> None:
    world = await build_world(store)
    q = world.queued.id
    r = world.root.id
    lease = world.lease
    cases: list[tuple[str, Call]] = [
        *each(
            "claim_execution id", BAD_IDS, lambda v: lambda s, w: s.claim_execution(v, WORKER, 1000)
        ),
        *each(
            "claim_execution worker", BAD_IDS, lambda v: lambda s, w: s.claim_execution(q, v, 1000)
        ),
        *each(
            "claim_execution timeout",
            BAD_TIMEOUTS,
            lambda v: lambda s, w: s.claim_execution(q, WORKER, v),
        ),
        *each("claim_next worker", BAD_IDS, lambda v: lambda s, w: s.claim_next(v, 1000)),
        *each("claim_next timeout", BAD_TIMEOUTS, lambda v: lambda s, w: s.claim_next(WORKER, v)),
        *each(
            "claim_next limit",
            BAD_LIMITS,
            lambda v: lambda s, w: s.claim_next(WORKER, 1000, limit=v),
        ),
        *each(
            "claim_next flow_ids",
            [[""], [LONG_ID], [1], FLOW, 5],
            lambda v: lambda s, w: s.claim_next(WORKER, 1000, flow_ids=v),
        ),
        *each("release worker", BAD_IDS, lambda v: lambda s, w: s.release_execution(r, v)),
        *each(
            "release epoch",
            [0, -1, "1", 1.5],
            lambda v: lambda s, w: s.release_execution(r, WORKER, epoch=v),
        ),
        *each("extend timeout", BAD_TIMEOUTS, lambda v: lambda s, w: s.extend_claim(r, WORKER, v)),
        *each(
            "extend epoch",
            [0, -1, "1"],
            lambda v: lambda s, w: s.extend_claim(r, WORKER, 1000, epoch=v),
        ),
        *each("extend worker", BAD_IDS, lambda v: lambda s, w: s.extend_claim(r, v, 1000)),
        *each(
            "extend_claims claims",
            [[(r, 0)], [("", 1)], [(r,)], [r], None],
            lambda v: lambda s, w: s.extend_claims(WORKER, v, 1000),
        ),
        *each(
            "extend_claims timeout",
            [0, -1, MAX_TIMEOUT_MS + 1],
            lambda v: lambda s, w: s.extend_claims(WORKER, [(r, lease.epoch)], v),
        ),
        *each(
            "get_active_claims worker",
            ["", LONG_ID, 3],
            lambda v: lambda s, w: s.get_active_claims(worker_id=v),
        ),
    ]
    await check_rejected(store, world, cases)


# ---------------------------------------------------------------- failures and recovery


async def test_failure_and_recovery_arguments_are_validated(store: ExecutionStore) -> None:
    world = await build_world(store)
    r = world.root.id
    epoch = world.lease.epoch

    def retry(**kwargs: object) -> Call:
        values: dict[str, object] = {"worker_id": WORKER, "epoch": epoch, "reason": "r"}
        values.update(kwargs)
        return lambda s, w: s.retry_execution(r, **values)

    cases: list[tuple[str, Call]] = [
        *each(
            "update_failure_info id",
            BAD_IDS,
            lambda v: lambda s, w: s.update_failure_info(v, 1, "x"),
        ),
        *each(
            "update_failure_info count",
            [-1, "2", 1.5, None, True],
            lambda v: lambda s, w: s.update_failure_info(r, v, "x"),
        ),
        *each(
            "update_failure_info reason",
            ["", "   ", "x" * (MAX_REASON_LENGTH + 1), 5, None],
            lambda v: lambda s, w: s.update_failure_info(r, 1, v),
        ),
        *each("retry worker", ["", LONG_ID, None], lambda v: retry(worker_id=v)),
        *each("retry epoch", [0, -1, "1", None], lambda v: retry(epoch=v)),
        *each("retry reason", ["", "x" * (MAX_REASON_LENGTH + 1), None], lambda v: retry(reason=v)),
        *each("retry delay_ms", [-1, -1000, 1.5, "10"], lambda v: retry(delay_ms=v)),
        *each("retry max_failures", [0, -1, "3"], lambda v: retry(max_failures=v)),
        *each("retry error_node_id", ["", 5], lambda v: retry(error_node_id=v)),
        *each(
            "needing_recovery limit",
            BAD_LIMITS,
            lambda v: lambda s, w: s.get_executions_needing_recovery(v),
        ),
        *each("recover worker", BAD_IDS, lambda v: lambda s, w: s.recover_executions(v)),
        *each(
            "recover max_failures",
            [0, -1, "5", 1.5],
            lambda v: lambda s, w: s.recover_executions(WORKER, max_failures=v),
        ),
        *each(
            "recover limit",
            BAD_LIMITS,
            lambda v: lambda s, w: s.recover_executions(WORKER, limit=v),
        ),
        *each(
            "recover backoff_base_ms",
            [-1, "1000", 1.5],
            lambda v: lambda s, w: s.recover_executions(WORKER, backoff_base_ms=v),
        ),
        *each(
            "recover backoff_max_ms",
            [-1, "1000"],
            lambda v: lambda s, w: s.recover_executions(WORKER, backoff_max_ms=v),
        ),
        *each(
            "record_recovery id",
            BAD_IDS,
            lambda v: lambda s, w: s.record_recovery(v, WORKER, "manual"),
        ),
        *each(
            "record_recovery worker",
            BAD_IDS,
            lambda v: lambda s, w: s.record_recovery(r, v, "manual"),
        ),
        *each(
            "record_recovery reason",
            ["", "x" * (MAX_REASON_LENGTH + 1), None],
            lambda v: lambda s, w: s.record_recovery(r, WORKER, v),
        ),
        *each(
            "record_recovery previous_status",
            ["bogus", 3],
            lambda v: lambda s, w: s.record_recovery(r, WORKER, "manual", v),
        ),
        *each(
            "record_recovery previous_worker_id",
            ["", LONG_ID],
            lambda v: lambda s, w: s.record_recovery(r, WORKER, "manual", "running", v),
        ),
    ]
    await check_rejected(store, world, cases)


async def test_operations_arguments_are_validated(store: ExecutionStore) -> None:
    world = await build_world(store)
    cases: list[tuple[str, Call]] = [
        *each(
            "lock id",
            ["1", 1.5, None, True, 1 << 64],
            lambda v: lambda s, w: s.try_acquire_recovery_lock(v),
        ),
        *each("unlock id", ["1", 1.5, None], lambda v: lambda s, w: s.release_recovery_lock(v)),
        *each(
            "purge before",
            [NAIVE, "2999-01-01", None, 0],
            lambda v: lambda s, w: s.purge_finished(v),
        ),
        *each(
            "purge limit",
            BAD_LIMITS,
            lambda v: lambda s, w: s.purge_finished(datetime(2999, 1, 1, tzinfo=UTC), limit=v),
        ),
        *each(
            "purge statuses",
            ["failed", [], ["running"], ["failed", "queued"], [None]],
            lambda v: lambda s, w: s.purge_finished(datetime(2999, 1, 1, tzinfo=UTC), statuses=v),
        ),
        *each(
            "purgeable statuses",
            [["created"], "stopped"],
            lambda v: lambda s, w: s.count_purgeable(datetime(2999, 1, 1, tzinfo=UTC), statuses=v),
        ),
    ]
    await check_rejected(store, world, cases)
    # The lock calls above took nothing: another caller can still take each lock.
    assert await store.try_acquire_recovery_lock(1) is True
    assert await store.release_recovery_lock(1) is True


async def test_bad_max_depth_is_a_typed_error(
    store: ExecutionStore, store_url: str, unique_prefix: str
) -> None:
    for max_depth in (-1, "3", 1.5):
        with pytest.raises((ValidationError, ConfigError)) as info:
            await open_store(store_url, table_prefix=unique_prefix, max_depth=max_depth)
        assert str(info.value)


async def test_bad_table_prefix_is_a_typed_error(store_url: str) -> None:
    for prefix in ("Bad-Prefix", "x; DROP TABLE y", "", "1abc", "a" * 64):
        with pytest.raises((ValidationError, ConfigError)) as info:
            await open_store(store_url, table_prefix=prefix)
        assert isinstance(info.value, FlowexecError) and str(info.value)
