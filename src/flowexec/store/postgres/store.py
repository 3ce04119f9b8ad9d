"""PostgreSQL backend: psycopg 3, async, one connection pool, plus one listening connection.

The pool serves every statement (store/postgres/plumbing.py). One connection LISTENs for new
work (store/postgres/listener.py) unless the store polls; leaders hold lease rows
(store/postgres/locks.py). Safe behind a transaction pooler (docs/scaling.md).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

from flowexec.model import EventBatch
from flowexec.policy import RecoveryPolicy
from flowexec.store.base import SqlExecutionStore
from flowexec.store.batches import CreateBatch
from flowexec.store.commands import (
    ClaimAndStart,
    Fence,
    RecoveryRecordWrite,
    RetryWrite,
    RootPageQuery,
    StatusPageQuery,
    StatusWrite,
    events_json,
    fence_params,
    statements_by_effect,
)
from flowexec.store.event_log import appended_events
from flowexec.store.event_wakeups import SUBSCRIPTION_TTL_S
from flowexec.store.lifecycle import completed_event, started_event
from flowexec.store.postgres import queries as Q
from flowexec.store.postgres.api_primitives import PostgresApiPrimitives
from flowexec.store.postgres.checkpoints import CHECKPOINTS
from flowexec.store.postgres.plumbing import PostgresPlumbing
from flowexec.store.postgres.queue_stats import QUEUE_STATS
from flowexec.store.postgres.scheduling import PostgresScheduling
from flowexec.store.postgres.status_listing import ROOTS_IN_STATUS
from flowexec.store.postgres.workers import PostgresWorkerRegistry
from flowexec.store.recovery import as_columns, recovery_writes
from flowexec.store.rows import Row

_STATUS_STATEMENTS = statements_by_effect(Q)


class NativeEncoding:
    """psycopg binds datetimes and lists as they are."""

    def time(self, value: datetime) -> datetime:
        return value

    def array(self, values: list[Any]) -> list[Any]:
        return values


_NATIVE = NativeEncoding()


class JsonTextEncoding:
    """Values inside one JSON parameter: datetimes as ISO 8601, which `timestamptz` reads
    back exactly."""

    def time(self, value: datetime) -> str:
        return value.isoformat()

    def array(self, values: list[Any]) -> list[Any]:
        return values


_JSON_TEXT = JsonTextEncoding()


class PostgresExecutionStore(
    PostgresPlumbing, PostgresScheduling, PostgresApiPrimitives, SqlExecutionStore
):
    backend: ClassVar[str] = "postgres"

    def __init__(self, url: str, **options: Any) -> None:
        """`options`: `table_prefix`, `max_depth` and the fields of `PostgresOptions`."""
        super().__init__(url, **options)
        self._worker_registry = PostgresWorkerRegistry(self._rows)

    # ------------------------------------------------------------ executions

    async def _insert_execution(
        self, params: dict[str, Any], *, start: bool, fence: Fence | None
    ) -> bool:
        full = {**params, "start": start, "channel": self._channel, **fence_params(fence)}
        statement = Q.INSERT_ROOT if params["parent_execution_id"] is None else Q.INSERT_CHILD
        return bool(await self._rows(statement, full))

    async def _insert_executions(self, batch: CreateBatch, *, start: bool) -> set[str]:
        params = {"rows": batch.json_rows(_JSON_TEXT), "start": start, "channel": self._channel}
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(self._sql(Q.INSERT_MANY), params)
            row = await cur.fetchone()
            assert row is not None, "INSERT_MANY always returns one row"
            inserted = set(row["ids"])
            missing = batch.not_inserted(inserted)
            if missing:
                keys = batch.keys_not_inserted(inserted)
                cur = await conn.execute(self._sql(Q.SETTLE_ROWS), {
                    "ids": missing, "key_flows": [f for f, _ in keys], "keys": [k for _, k in keys]
                })
                batch.settle(inserted, await cur.fetchall())
            return inserted

    async def _fetch_execution(self, id: str) -> Row | None:
        return await self._one(Q.GET, {"id": id})

    async def _fetch_by_key(self, flow_id: str, key: str) -> Row | None:
        return await self._one(Q.GET_BY_KEY, {"flow_id": flow_id, "idempotency_key": key})

    async def _delete_tree(self, id: str) -> bool:
        return bool(await self._rows(Q.DELETE_TREE, {"id": id}))

    async def _write_status(self, write: StatusWrite) -> bool:
        params = {
            **write.params(_NATIVE),
            "channel": self._channel,
            "events_channel": self._events_channel,
        }
        return bool(await self._rows(_STATUS_STATEMENTS[write.effect], params))

    async def _make_runnable(self, id: str) -> bool:
        return bool(await self._rows(Q.MAKE_RUNNABLE, {"id": id, "channel": self._channel}))

    async def _root_page(self, query: RootPageQuery) -> list[Row]:
        return await self._rows(Q.ROOT_PAGE[query.variant], query.params(_NATIVE))

    async def _roots_in_status(self, query: StatusPageQuery) -> list[Row]:
        return await self._rows(ROOTS_IN_STATUS[query.variant], query.params(_NATIVE))

    async def _children(self, parent_id: str) -> list[Row]:
        return await self._rows(Q.CHILDREN, {"id": parent_id})

    async def _subtree(self, id: str, max_nodes: int) -> list[Row]:
        return await self._rows(Q.SUBTREE, {"id": id, "max_nodes": max_nodes})

    async def _statuses(self, ids: list[str]) -> list[Row]:
        return await self._rows(Q.STATUSES, {"ids": ids})

    # ------------------------------------------------------------ claims

    async def _claim_one(self, execution_id: str, worker_id: str, timeout_ms: int) -> Row | None:
        return await self._one(
            Q.CLAIM_ONE, {"id": execution_id, "worker_id": worker_id, "timeout_ms": timeout_ms}
        )

    async def _claim_batch(
        self, worker_id: str, timeout_ms: int, limit: int, flow_ids: list[str] | None
    ) -> list[Row]:
        statement = Q.CLAIM_BATCH if flow_ids is None else Q.CLAIM_BATCH_FOR_FLOWS
        return await self._rows(
            statement,
            {"worker_id": worker_id, "timeout_ms": timeout_ms, "limit": limit,
             "flow_ids": flow_ids},
        )

    async def _claim_and_start(self, command: ClaimAndStart) -> tuple[list[Row], set[str]]:
        statement = Q.CLAIM_AND_START if command.flow_ids is None else Q.CLAIM_AND_START_FOR_FLOWS
        completions = command.completions
        params: dict[str, Any] = {
            "worker_id": command.worker_id,
            "timeout_ms": command.timeout_ms,
            "limit": command.limit,
            "most": command.limit + len(completions),
            "flow_ids": command.flow_ids,
            "done_ids": [c.execution_id for c in completions],
            "done_epochs": [c.epoch for c in completions],
            "done_results": [c.result_json for c in completions],
            "completed_event": events_json(completed_event()),
            "started_event": events_json(started_event(command.worker_id)),
            "events_channel": self._events_channel,
        }
        rows = await (
            self._claim_within_limits(command, params)
            if command.running_limits
            else self._rows(statement, params)
        )
        completed = set(rows[0]["completed"]) if rows else set()
        return [r for r in rows if r["id"] is not None], completed

    async def _release(self, execution_id: str, worker_id: str, epoch: int | None) -> bool:
        params = {"id": execution_id, "worker_id": worker_id, "epoch": epoch}
        return bool(await self._rows(Q.RELEASE, params))

    async def _extend(
        self, worker_id: str, claims: list[tuple[str, int | None]], timeout_ms: int
    ) -> set[str]:
        rows = await self._rows(
            Q.EXTEND,
            {
                "worker_id": worker_id,
                "timeout_ms": timeout_ms,
                "ids": [c[0] for c in claims],
                "epochs": [c[1] for c in claims],
            },
        )
        return {r["execution_id"] for r in rows}

    async def _active_claims(self, worker_id: str | None) -> list[Row]:
        if worker_id is None:
            return await self._rows(Q.ACTIVE_CLAIMS)
        return await self._rows(Q.ACTIVE_CLAIMS_OF_WORKER, {"worker_id": worker_id})

    async def _claim_row(self, execution_id: str) -> Row | None:
        return await self._one(Q.CLAIM_ROW, {"id": execution_id})

    async def _expire_claims(self) -> int:
        return await self._count(Q.EXPIRE_CLAIMS)

    # ------------------------------------------------------------ failures and recovery

    async def _set_failure_info(self, execution_id: str, failure_count: int, reason: str) -> bool:
        params = {"id": execution_id, "failure_count": failure_count, "reason": reason}
        return await self._count(Q.SET_FAILURE_INFO, params) > 0

    async def _retry(self, write: RetryWrite) -> Row | None:
        return await self._one(
            Q.RETRY,
            {**write.params(), "channel": self._channel, "events_channel": self._events_channel},
        )

    async def _needing_recovery(self, limit: int) -> list[Row]:
        return await self._rows(Q.NEEDING_RECOVERY, {"limit": limit})

    async def _recover(self, worker_id: str, policy: RecoveryPolicy) -> list[Row]:
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(
                self._sql(Q.RECOVERY_VICTIMS), {"limit": policy.batch_size}
            )
            victims = await cur.fetchall()
            if not victims:
                return []
            cur = await conn.execute(
                self._sql(Q.APPLY_RECOVERY),
                {
                    **as_columns(recovery_writes(policy, victims)),
                    "worker_id": worker_id,
                    "channel": self._channel,
                    "events_channel": self._events_channel,
                },
            )
            return await cur.fetchall()

    async def _insert_recovery(self, write: RecoveryRecordWrite) -> Row | None:
        return await self._one(Q.INSERT_RECOVERY, write.params())

    async def _recovery_rows(self, execution_id: str) -> list[Row]:
        return await self._rows(Q.RECOVERY_HISTORY, {"id": execution_id})

    # ------------------------------------------------------------ the event log

    async def _event_rows(
        self, execution_id: str, from_index: int, limit: int, types: list[str] | None
    ) -> list[Row]:
        params = {"id": execution_id, "from_index": from_index, "limit": limit, "types": types}
        return await self._rows(Q.EVENTS_PAGE if types is None else Q.EVENTS_PAGE_OF_TYPES, params)

    async def _append_events(self, worker_id: str, batches: list[EventBatch]) -> set[str]:
        entries = appended_events(batches)
        row = await self._one(
            Q.APPEND_EVENTS,
            {
                "worker_id": worker_id,
                "ids": [e["id"] for e in entries],
                "epochs": [e["epoch"] for e in entries],
                "events": [events_json(e["events"]) for e in entries],
                "checkpoints": [json.dumps(e["checkpoints"]) for e in entries],
                "events_channel": self._events_channel,
            },
        )
        assert row is not None, "APPEND_EVENTS always returns one row"
        return set(row["appended"])

    async def _checkpoint_rows(self, execution_id: str) -> list[Row]:
        return await self._rows(CHECKPOINTS, {"id": execution_id})

    async def wait_for_events(self, execution_id: str, timeout_s: float) -> None:
        """Until a NOTIFY names the execution (or any reconnect of the listener), or the
        timeout, the subscriber's re-read that covers a lost notification.

        Statements NOTIFY only for executions someone follows, so this first registers the
        interest (renewed every half `SUBSCRIPTION_TTL_S`) and then returns at once: events
        committed before the registration sent no NOTIFY, and the caller reads again.
        """
        if self.polling:
            await self._event_wakeups.wait(
                execution_id, min(timeout_s, self.options.poll_interval_s)
            )
            return
        self._listener.ensure_running()
        if self._subscriptions.due(execution_id):
            await self._rows(
                Q.SUBSCRIBE_EVENTS,
                {"id": execution_id, "subscriber": self._subscriptions.subscriber,
                 "ttl_s": SUBSCRIPTION_TTL_S},
            )
            self._subscriptions.renewed(execution_id)
            return
        await self._event_wakeups.wait(execution_id, timeout_s)

    # ------------------------------------------------------------ operations

    async def _purge(self, before: datetime, limit: int, statuses: list[str]) -> int:
        return await self._count(Q.PURGE, {"before": before, "limit": limit, "statuses": statuses})

    async def _count_purgeable(self, before: datetime, statuses: list[str]) -> int:
        row = await self._one(Q.PURGEABLE_COUNT, {"before": before, "statuses": statuses})
        return 0 if row is None else int(row["n"])

    async def _stats_rows(self) -> tuple[list[Row], Row]:
        counts = await self._rows(Q.STATS_BY_STATUS)
        extra = await self._one(Q.STATS_EXTRA)
        assert extra is not None, "STATS_EXTRA always returns one row"
        return counts, extra

    async def _queue_stats_rows(self) -> list[Row]:
        return await self._rows(QUEUE_STATS)

    async def now(self) -> datetime:
        row = await self._one(Q.NOW)
        assert row is not None, "NOW always returns one row"
        value: datetime = row["now"]
        return value
