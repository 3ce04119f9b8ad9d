"""A recovery sweep's writes, decided in Python by `RecoveryPolicy` for both backends.

A backend expires claims, locks the victims and reads them (id, failure count, previous status
and worker, the status of what is left of the claim), then applies `recovery_writes` in one
set-based statement, all in one transaction (docs/architecture.md §6). Why the worker counts as
dead and what follows are decided here, once; the failure count itself is incremented in SQL.
Each write carries its lifecycle events (`events`, a JSON list), appended by the same
transaction.
"""

from __future__ import annotations

from typing import Any

from flowexec.policy import RecoveryPolicy, dead_worker_reason
from flowexec.store.commands import Params, events_json
from flowexec.store.lifecycle import recovery_events
from flowexec.store.rows import Row

RECOVERY_WRITE_COLUMNS = (
    "id",
    "status",
    "last_failure_reason",
    "error_message",
    "backoff_ms",
    "record_reason",
    "previous_status",
    "previous_worker_id",
    "events",
)


def recovery_writes(policy: RecoveryPolicy, victims: list[Row]) -> list[Params]:
    """One row per victim, keyed by `RECOVERY_WRITE_COLUMNS`."""
    writes: list[Params] = []
    for victim in victims:
        reason = dead_worker_reason(victim["claim_status"])
        outcome = policy.outcome(int(victim["failure_count"]), reason)
        writes.append(
            {
                "id": victim["id"],
                "status": outcome.status.value,
                "last_failure_reason": outcome.last_failure_reason,
                "error_message": outcome.error_message,
                "backoff_ms": outcome.backoff_ms,
                "record_reason": outcome.record_reason,
                "previous_status": victim["previous_status"],
                "previous_worker_id": victim["previous_worker_id"],
                "events": events_json(recovery_events(outcome, reason)),
            }
        )
    return writes


def as_columns(writes: list[Params]) -> dict[str, list[Any]]:
    """The writes column by column, for statements that `unnest` parallel arrays."""
    return {column: [w[column] for w in writes] for column in RECOVERY_WRITE_COLUMNS}
