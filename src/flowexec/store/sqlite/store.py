"""SQLite backend: stdlib `sqlite3` on one dedicated thread per store, WAL, `BEGIN IMMEDIATE`.

Every primitive is one transaction (store/sqlite/connection.py); a write takes the database's
write lock at `BEGIN IMMEDIATE`, so the statements inside it are atomic and see no concurrent
writer. Several processes share one file. The recovery lock is an OS file lock beside the
database (store/sqlite/locks.py). The connection, statements and migrations sit below in
store/sqlite/backend.py; the event log, checkpoints, recovery records and stats in history.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

from flowexec.model import check_positive
from flowexec.policy import RecoveryPolicy
from flowexec.store.batches import CreateBatch
from flowexec.store.commands import (
    ClaimAndStart,
    Fence,
    RecoveryRecordWrite,
    RetryWrite,
    RootPageQuery,
    StatusPageQuery,
    StatusWrite,
    fence_params,
    statements_by_effect,
)
from flowexec.store.lifecycle import started_event
from flowexec.store.recovery import recovery_writes
from flowexec.store.rows import Row
from flowexec.store.sqlite import queries as Q
from flowexec.store.sqlite.api_primitives import SqliteApiPrimitives
from flowexec.store.sqlite.backend import SqliteBackend
from flowexec.store.sqlite.codec import SQLITE_ENCODING, to_micros
from flowexec.store.sqlite.event_log import log_events
from flowexec.store.sqlite.history import SqliteHistory
from flowexec.store.sqlite.scheduling import SqliteScheduling
from flowexec.store.sqlite.status_listing import ROOTS_IN_STATUS

_STATUS_STATEMENTS = statements_by_effect(Q)


class SqliteExecutionStore(SqliteScheduling, SqliteApiPrimitives, SqliteHistory, SqliteBackend):
    """The primitives of executions, claims and recovery; history and plumbing are mixed in."""

    # ------------------------------------------------------------ executions

    async def _insert_execution(
        self, params: dict[str, Any], *, start: bool, fence: Fence | None
    ) -> bool:
        values = {
            **params,
            "created_at": to_micros(params["created_at"]),
            "updated_at": to_micros(params["updated_at"]),
            "run_at": None if params["run_at"] is None else to_micros(params["run_at"]),
            "start": start,
            **fence_params(fence),
        }
        statement = Q.INSERT_ROOT if params["parent_execution_id"] is None else Q.INSERT_CHILD

        def body(conn: sqlite3.Connection, now: int) -> bool:
            return bool(self._rows(conn, statement, {**values, "now": now}))

        return await self._db.write(body)

    async def _insert_executions(self, batch: CreateBatch, *, start: bool) -> set[str]:
        rows = batch.json_rows(SQLITE_ENCODING)

        def body(conn: sqlite3.Connection, now: int) -> set[str]:
            params = {"rows": rows, "start": start, "now": now}
            inserted = {r["id"] for r in self._rows(conn, Q.INSERT_MANY, params)}
            missing = batch.not_inserted(inserted)
            if missing:
                keys = json.dumps(batch.keys_not_inserted(inserted))
                stored = self._rows(
                    conn, Q.SETTLE_ROWS, {"ids": json.dumps(missing), "keys": keys}
                )
                batch.settle(inserted, stored)
            return inserted

        return await self._db.write(body)

    async def _fetch_execution(self, id: str) -> Row | None:
        rows = await self._read_rows(Q.GET, {"id": id})
        return rows[0] if rows else None

    async def _fetch_by_key(self, flow_id: str, key: str) -> Row | None:
        rows = await self._read_rows(Q.GET_BY_KEY, {"flow_id": flow_id, "idempotency_key": key})
        return rows[0] if rows else None

    async def _delete_tree(self, id: str) -> bool:
        def body(conn: sqlite3.Connection, now: int) -> bool:
            ids = self._rows(conn, Q.SUBTREE_IDS_DEEPEST_FIRST, {"id": id})
            conn.executemany(self._sql(Q.DELETE_ONE), [(r["id"],) for r in ids])
            return bool(ids)

        return await self._db.write(body)

    async def _write_status(self, write: StatusWrite) -> bool:
        return await self._db.write(lambda conn, now: self._apply_status(conn, now, write))

    def _apply_status(self, conn: sqlite3.Connection, now: int, write: StatusWrite) -> bool:
        """One status write and its lifecycle event inside the caller's transaction; True if
        it was made."""
        prior = self._rows(conn, Q.PRIOR_STATUS, {"id": write.execution_id})
        params = {**write.params(SQLITE_ENCODING), "now": now}
        if not prior or not self._rows(conn, _STATUS_STATEMENTS[write.effect], params):
            return False
        event = write.events[prior[0]["status"]]
        log_events(conn, self._sql, now, write.execution_id, write.attempt, [event])
        return True

    async def _make_runnable(self, id: str) -> bool:
        return bool(await self._write_rows(Q.MAKE_RUNNABLE, {"id": id}))

    async def _root_page(self, query: RootPageQuery) -> list[Row]:
        return await self._read_rows(Q.ROOT_PAGE[query.variant], query.params(SQLITE_ENCODING))

    async def _roots_in_status(self, query: StatusPageQuery) -> list[Row]:
        return await self._read_rows(ROOTS_IN_STATUS[query.variant], query.params(SQLITE_ENCODING))

    async def _children(self, parent_id: str) -> list[Row]:
        return await self._read_rows(Q.CHILDREN, {"id": parent_id})

    async def _subtree(self, id: str, max_nodes: int) -> list[Row]:
        return await self._read_rows(Q.SUBTREE, {"id": id, "max_nodes": max_nodes})

    async def _statuses(self, ids: list[str]) -> list[Row]:
        return await self._read_rows(Q.STATUSES, {"ids": json.dumps(ids)})

    # ------------------------------------------------------------ claims

    async def _claim_one(self, execution_id: str, worker_id: str, timeout_ms: int) -> Row | None:
        params = {"id": execution_id, "worker_id": worker_id, "timeout_ms": timeout_ms}

        def body(conn: sqlite3.Connection, now: int) -> Row | None:
            claims = self._rows(conn, Q.CLAIM_ONE, {**params, "now": now})
            return claims[0] if claims else None

        return await self._db.write(body)

    def _claim_runnable(
        self,
        conn: sqlite3.Connection,
        now: int,
        worker_id: str,
        timeout_ms: int,
        limit: int,
        flow_ids: list[str] | None,
        running_limits: dict[str, int] | None = None,
        *,
        start: bool = False,
    ) -> list[Row]:
        """Claim up to `limit` runnable executions, most urgent and oldest first, within the
        flows' running limits: their new claims, in that order; with `start`, started by the
        same write, as whole execution rows."""
        if limit <= 0:
            return []
        pick = Q.PICK_RUNNABLE if flow_ids is None else Q.PICK_RUNNABLE_FOR_FLOWS
        pick_params = {
            "limit": limit,
            "flow_ids": None if flow_ids is None else json.dumps(flow_ids),
            "now": now,
        }
        if running_limits:
            pick, pick_params["limits"] = self._pick_statement(running_limits, flow_ids)
        ids = [r["id"] for r in self._rows(conn, pick, pick_params)]
        if not ids:
            return []
        claims = self._rows(
            conn,
            Q.START_PICKED if start else Q.CLAIM_PICKED,
            {"ids": json.dumps(ids), "worker_id": worker_id, "now": now,
             "timeout_ms": timeout_ms},
        )
        order = {execution_id: n for n, execution_id in enumerate(ids)}
        claims.sort(key=lambda c: order[c["execution_id"]])
        return claims

    async def _claim_batch(
        self, worker_id: str, timeout_ms: int, limit: int, flow_ids: list[str] | None
    ) -> list[Row]:
        def body(conn: sqlite3.Connection, now: int) -> list[Row]:
            return self._claim_runnable(conn, now, worker_id, timeout_ms, limit, flow_ids)

        return await self._db.write(body)

    async def _claim_and_start(self, command: ClaimAndStart) -> tuple[list[Row], set[str]]:
        writes = [c.as_status_write(command.worker_id) for c in command.completions]

        def body(conn: sqlite3.Connection, now: int) -> tuple[list[Row], set[str]]:
            # Refused completions are skipped and change nothing.
            completed = {w.execution_id for w in writes if self._apply_status(conn, now, w)}
            started = self._claim_runnable(
                conn, now, command.worker_id, command.timeout_ms,
                command.limit + len(completed), command.flow_ids, command.running_limits,
                start=True,
            )
            event = started_event(command.worker_id)
            for row in started:
                log_events(conn, self._sql, now, row["id"], int(row["claim_epoch"]), [event])
            return started, completed

        return await self._db.write(body)

    async def _release(self, execution_id: str, worker_id: str, epoch: int | None) -> bool:
        def body(conn: sqlite3.Connection, now: int) -> bool:
            params = {"id": execution_id, "worker_id": worker_id, "epoch": epoch, "now": now}
            return bool(self._rows(conn, Q.RELEASE, params))

        return await self._db.write(body)

    async def _extend(
        self, worker_id: str, claims: list[tuple[str, int | None]], timeout_ms: int
    ) -> set[str]:
        params = {
            "worker_id": worker_id,
            "timeout_ms": timeout_ms,
            "pairs": json.dumps([list(c) for c in claims]),
        }
        return {r["execution_id"] for r in await self._write_rows(Q.EXTEND, params)}

    async def _active_claims(self, worker_id: str | None) -> list[Row]:
        if worker_id is None:
            return await self._read_rows(Q.ACTIVE_CLAIMS)
        return await self._read_rows(Q.ACTIVE_CLAIMS_OF_WORKER, {"worker_id": worker_id})

    async def _claim_row(self, execution_id: str) -> Row | None:
        rows = await self._read_rows(Q.CLAIM_ROW, {"id": execution_id})
        return rows[0] if rows else None

    async def _expire_claims(self) -> int:
        return await self._write_count(Q.EXPIRE_CLAIMS)

    # ------------------------------------------------------------ failures and recovery

    async def _set_failure_info(self, execution_id: str, failure_count: int, reason: str) -> bool:
        params = {"id": execution_id, "failure_count": failure_count, "reason": reason}
        return await self._write_count(Q.SET_FAILURE_INFO, params) > 0

    async def _retry(self, write: RetryWrite) -> Row | None:
        def body(conn: sqlite3.Connection, now: int) -> Row | None:
            rows = self._rows(conn, Q.RETRY, {**write.params(), "now": now})
            if not rows:
                return None
            event = write.events[rows[0]["status"]]
            log_events(conn, self._sql, now, write.execution_id, write.epoch, [event])
            return rows[0]

        return await self._db.write(body)

    async def _needing_recovery(self, limit: int) -> list[Row]:
        return await self._read_rows(Q.NEEDING_RECOVERY, {"limit": limit})

    async def _recover(self, worker_id: str, policy: RecoveryPolicy) -> list[Row]:
        def body(conn: sqlite3.Connection, now: int) -> list[Row]:
            # BEGIN IMMEDIATE holds the whole database: the victims stay as read until COMMIT.
            conn.execute(self._sql(Q.EXPIRE_CLAIMS), {"now": now})
            victims = self._rows(
                conn, Q.RECOVERY_VICTIMS, {"now": now, "limit": policy.batch_size}
            )
            if not victims:
                return []
            applied = recovery_writes(policy, victims)
            writes = json.dumps(applied)
            conn.execute(self._sql(Q.APPLY_RECOVERY), {"writes": writes, "now": now})
            for write in applied:
                log_events(conn, self._sql, now, write["id"], 0, json.loads(write["events"]))
            params = {"writes": writes, "now": now, "worker_id": worker_id}
            return sorted(self._rows(conn, Q.RECORD_RECOVERIES, params), key=lambda r: r["id"])

        return await self._db.write(body)

    async def _insert_recovery(self, write: RecoveryRecordWrite) -> Row | None:
        rows = await self._write_rows(Q.INSERT_RECOVERY, write.params())
        return rows[0] if rows else None

    # ------------------------------------------------------------ waking workers

    async def wait_for_work(self, timeout_s: float) -> None:
        """Wake on this store's own new work at once, on any other connection's commit within
        `commit_poll_interval_s`, and otherwise after `timeout_s`.

        SQLite has no NOTIFY. `PRAGMA data_version` tells, without reading a table, whether
        another connection (another store or process) committed since the store last looked;
        such a commit may have queued work, so the worker looks. A worker that keeps waking
        up for other commits does so at most once per poll interval.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + check_positive(timeout_s, "timeout_s", allow_zero=True)
        seen = self._db.data_version
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if await self._wait_local(min(self._options.commit_poll_interval_s, remaining)):
                return
            if await self._db.poll_data_version() != seen:
                return

