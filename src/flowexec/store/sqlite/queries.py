"""Every SQLite statement flowexec runs, each under a name.

`{p}` is the validated table prefix, filled in once per store; values are always parameters.
Every write runs inside `BEGIN IMMEDIATE`, which holds the whole database, so a primitive made of
several statements is atomic. `:now` is the database clock read once at the start of each
transaction (like PostgreSQL's `now()`), in integer microseconds since the Unix epoch (UTC).
SQLite's clock ticks in milliseconds while `created_at`/`updated_at` of a new execution come
from Python's microsecond clock, up to a millisecond ahead of SQLite's reading of the same
moment; `_TOUCH` keeps such an `updated_at` instead of moving it backwards.
Lists travel as JSON text and are unpacked with `json_each`.
"""

from __future__ import annotations

import itertools

# SQLite keeps time in whole milliseconds; rounding undoes the float error of julianday().
CLOCK = "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000"
NOW_MICROS = f"SELECT {CLOCK} AS now_us"
DATA_VERSION = "PRAGMA data_version"

EXECUTION_COLUMNS = """
    id, flow_id, owner_id, root_execution_id, parent_execution_id, status, created_at,
    updated_at, started_at, completed_at, error_message, error_node_id, execution_depth,
    options, integration, external_events, result, failure_count, last_failure_reason,
    last_failure_at, processing_started_at, processing_worker_id, available_at, claim_epoch,
    priority, idempotency_key
"""

_E = EXECUTION_COLUMNS
_E_QUALIFIED = ", ".join("e." + c.strip() for c in _E.split(","))
# A claim's lease lives on its execution row (SQLite migration 0008), read as a claim here.
_CLAIM_COLUMNS = """id AS execution_id, lease_worker_id AS worker_id,
    lease_claimed_at AS claimed_at, lease_expires_at AS expires_at,
    lease_heartbeat_at AS heartbeat_at, lease_status AS status, claim_epoch AS epoch"""
_LIVE_CLAIM = "lease_status = 'active' AND lease_expires_at > :now"
# A lease may be taken when it is not live (never taken, released, expired, or past expires_at).
_TAKEOVER = f"({_LIVE_CLAIM}) IS NOT 1"
_TOUCH = """updated_at = CASE WHEN updated_at > :now AND updated_at < :now + 1000
                     THEN updated_at ELSE :now END"""
_FENCE = """
    AND (:fence_worker IS NULL
         OR (processing_worker_id = :fence_worker AND claim_epoch = :fence_epoch))
"""

# ------------------------------------------------------------------ executions

_INSERT_COLUMNS = """
    id, flow_id, owner_id, root_execution_id, parent_execution_id, status, created_at,
    updated_at, execution_depth, options, integration, external_events, available_at,
    priority, idempotency_key
"""

# A delayed start runs at `run_at`, never before now: a past time queues it as of now.
_AVAILABLE_AT = "CASE WHEN :start THEN max(:now, COALESCE(:run_at, :now)) END"


INSERT_ROOT = f"""
    INSERT INTO {{p}}executions ({_INSERT_COLUMNS})
    VALUES (:id, :flow_id, :owner_id, :root_execution_id, NULL, :status, :created_at,
        :updated_at, :execution_depth, :options, :integration, :external_events, {_AVAILABLE_AT},
        :priority, :idempotency_key)
    ON CONFLICT DO NOTHING
    RETURNING id
"""

# Inserted only if the parent is where the child says it is (and held by the fence, if any).
INSERT_CHILD = f"""
    INSERT INTO {{p}}executions ({_INSERT_COLUMNS})
    SELECT :id, :flow_id, :owner_id, :root_execution_id, parent.id, :status, :created_at,
        :updated_at, :execution_depth, :options, :integration, :external_events, {_AVAILABLE_AT},
        :priority, :idempotency_key
    FROM {{p}}executions parent
    WHERE parent.id = :parent_execution_id
      AND parent.root_execution_id = :root_execution_id
      AND parent.execution_depth + 1 = :execution_depth
      AND (:fence_worker IS NULL OR (parent.processing_worker_id = :fence_worker
                                     AND parent.claim_epoch = :fence_epoch))
    ON CONFLICT DO NOTHING
    RETURNING id
"""

# create_many: one statement per batch, its rows a JSON array of objects named like INSERT_ROOT's
# parameters, parents first. The tree fields inside the batch were checked in Python; each
# row's anchor (the stored execution its ancestry in the batch hangs from) is checked as
# INSERT_CHILD checks a parent.
INSERT_MANY = f"""
    WITH batch AS (
        SELECT json_extract(value, '$.id') AS id,
            json_extract(value, '$.flow_id') AS flow_id,
            json_extract(value, '$.owner_id') AS owner_id,
            json_extract(value, '$.root_execution_id') AS root_execution_id,
            json_extract(value, '$.parent_execution_id') AS parent_execution_id,
            json_extract(value, '$.status') AS status,
            json_extract(value, '$.created_at') AS created_at,
            json_extract(value, '$.updated_at') AS updated_at,
            json_extract(value, '$.execution_depth') AS execution_depth,
            json_extract(value, '$.options') AS options,
            json_extract(value, '$.integration') AS integration,
            json_extract(value, '$.external_events') AS external_events,
            json_extract(value, '$.anchor_id') AS anchor_id,
            json_extract(value, '$.anchor_depth') AS anchor_depth,
            json_extract(value, '$.run_at') AS run_at,
            json_extract(value, '$.priority') AS priority,
            json_extract(value, '$.idempotency_key') AS idempotency_key,
            key AS position
        FROM json_each(:rows)
    )
    INSERT INTO {{p}}executions ({_INSERT_COLUMNS})
    SELECT b.id, b.flow_id, b.owner_id, b.root_execution_id, b.parent_execution_id, b.status,
        b.created_at, b.updated_at, b.execution_depth, b.options, b.integration,
        b.external_events, CASE WHEN :start THEN max(:now, COALESCE(b.run_at, :now)) END,
        b.priority, b.idempotency_key
    FROM batch b
    WHERE b.anchor_id IS NULL
       OR EXISTS (SELECT 1 FROM {{p}}executions a
                  WHERE a.id = b.anchor_id
                    AND a.root_execution_id = b.root_execution_id
                    AND a.execution_depth = b.anchor_depth)
    ORDER BY b.position
    ON CONFLICT DO NOTHING
    RETURNING id
"""

GET = f"SELECT {_E} FROM {{p}}executions WHERE id = :id"

GET_MANY = f"""
    SELECT {_E} FROM {{p}}executions WHERE id IN (SELECT value FROM json_each(:ids))
"""

GET_BY_KEY = f"""
    SELECT {_E} FROM {{p}}executions
    WHERE flow_id = :flow_id AND idempotency_key = :idempotency_key
"""

# What create_many's settling reads: the rows of ids its insert left out, and the rows holding
# the idempotency keys it asked for (`:keys`, a JSON array of [flow_id, key] pairs).
SETTLE_ROWS = f"""
    SELECT {_E} FROM {{p}}executions WHERE id IN (SELECT value FROM json_each(:ids))
    UNION
    SELECT {_E} FROM {{p}}executions e
    WHERE EXISTS (SELECT 1 FROM json_each(:keys) k
                  WHERE e.flow_id = json_extract(k.value, '$[0]')
                    AND e.idempotency_key = json_extract(k.value, '$[1]'))
"""

# Deepest first: deleting a leaf cascades to its events and history only, so no delete recurses
# through the parent foreign key (SQLite caps trigger recursion at 1000 levels).
SUBTREE_IDS_DEEPEST_FIRST = """
    WITH RECURSIVE sub (id, level) AS (
        SELECT id, 0 FROM {p}executions WHERE id = :id
        UNION ALL
        SELECT c.id, sub.level + 1
        FROM {p}executions c JOIN sub ON c.parent_execution_id = sub.id
    )
    SELECT id FROM sub ORDER BY level DESC
"""

DELETE_ONE = "DELETE FROM {p}executions WHERE id = ?"

# Not started yet, or waiting for a delayed start or a retry's backoff; never a claimed one.
MAKE_RUNNABLE = f"""
    UPDATE {{p}}executions SET available_at = :now, {_TOUCH}
    WHERE id = :id AND status = 'created' AND processing_worker_id IS NULL
      AND (available_at IS NULL OR available_at > :now)
    RETURNING id
"""

# What every status write ends with: the guard (legal source, fence) and the id it wrote.
_STATUS_GUARD = f"""
    WHERE id = :id AND status IN (SELECT value FROM json_each(:sources)) {_FENCE}
    RETURNING id
"""
_CLEAR_PROCESSING = "processing_worker_id = NULL, processing_started_at = NULL,"
# Ends a live lease in the statement that ends the claim: one write to one row.
_END_CLAIM = _CLEAR_PROCESSING + """
    lease_status = CASE WHEN lease_status = 'active' THEN 'released' ELSE lease_status END,"""

STATUS_RUN = f"""
    UPDATE {{p}}executions SET
        status = 'running',
        started_at = COALESCE(started_at, :started_at, :now),
        error_message = COALESCE(:error_message, error_message),
        error_node_id = COALESCE(:error_node_id, error_node_id),
        {_TOUCH}
    {_STATUS_GUARD}
"""

STATUS_PAUSE = f"""
    UPDATE {{p}}executions SET status = 'paused', {_TOUCH}
    {_STATUS_GUARD}
"""

STATUS_FINISH = f"""
    UPDATE {{p}}executions SET
        status = :status,
        completed_at = COALESCE(:completed_at, :now),
        error_message = :error_message,
        error_node_id = :error_node_id,
        result = :result,
        {_END_CLAIM}
        {_TOUCH}
    {_STATUS_GUARD}
"""

STATUS_REQUEUE = f"""
    UPDATE {{p}}executions SET
        status = 'created',
        completed_at = NULL,
        error_message = COALESCE(:error_message, error_message),
        error_node_id = COALESCE(:error_node_id, error_node_id),
        available_at = :now,
        {_END_CLAIM}
        {_TOUCH}
    {_STATUS_GUARD}
"""


ROOT_PAGE_AGGREGATES = """
    , agg AS (
        SELECT root_execution_id, max(execution_depth) AS levels, count(*) - 1 AS total_nested
        FROM {p}executions WHERE root_execution_id IN (SELECT id FROM page)
        GROUP BY root_execution_id
    )
    SELECT page.*, agg.levels, agg.total_nested
    FROM page JOIN agg ON agg.root_execution_id = page.id
    ORDER BY page.created_at DESC, page.id DESC
"""
"""The aggregates of a page of roots (`page`), in one grouped query."""


def _root_page(where: str) -> str:
    """One page of roots, then the aggregates of the whole page in one grouped query."""
    return f"""
    WITH page AS (
        SELECT {_E} FROM {{p}}executions
        WHERE flow_id = :flow_id AND parent_execution_id IS NULL {where}
        ORDER BY created_at DESC, id DESC
        LIMIT :limit
    )
    {ROOT_PAGE_AGGREGATES}
    """


_AFTER = "AND (created_at, id) < (:after_created, :after_id)"
_OWNER = "AND owner_id = :owner_id"
_STATUS = "AND status = :status"
ROOT_PAGE = {
    (cursor, owner, status): _root_page(
        " ".join(f for f, on in ((_AFTER, cursor), (_OWNER, owner), (_STATUS, status)) if on)
    )
    for cursor, owner, status in itertools.product((False, True), repeat=3)
}
"""Keyed by (has cursor, has owner filter, has status filter)."""

CHILDREN = f"""
    SELECT {_E} FROM {{p}}executions WHERE parent_execution_id = :id
    ORDER BY created_at, id
"""

SUBTREE = f"""
    WITH RECURSIVE sub (id, level) AS (
        SELECT id, 0 FROM {{p}}executions WHERE id = :id
        UNION ALL
        SELECT c.id, sub.level + 1
        FROM {{p}}executions c JOIN sub ON c.parent_execution_id = sub.id
    ), bounded AS (
        SELECT id, level FROM sub ORDER BY level, id LIMIT :max_nodes
    )
    SELECT {_E_QUALIFIED}, bounded.level
    FROM bounded JOIN {{p}}executions e ON e.id = bounded.id
    ORDER BY bounded.level, bounded.id
"""

STATUSES = """
    SELECT id, status FROM {p}executions WHERE id IN (SELECT value FROM json_each(:ids))
"""

# ------------------------------------------------------------------ claims

# Takes the lease (the next epoch) and sets the processing fields in one write. A claimed
# execution is not available before its lease ends (see the PostgreSQL statement).
_LEASE_TAKEN = f"""
        processing_worker_id = :worker_id,
        processing_started_at = :now,
        claim_epoch = claim_epoch + 1,
        lease_worker_id = :worker_id,
        lease_status = 'active',
        lease_claimed_at = :now,
        lease_heartbeat_at = :now,
        lease_expires_at = :now + :timeout_ms * 1000,
        available_at = :now + :timeout_ms * 1000,
        {_TOUCH}
"""

# `claim_execution` also lets the holder re-claim, with a new epoch.
CLAIM_ONE = f"""
    UPDATE {{p}}executions SET {_LEASE_TAKEN}
    WHERE id = :id AND (status = 'running' OR (status = 'created'
          AND (available_at <= :now OR processing_worker_id = :worker_id)))
      AND ({_TAKEOVER} OR lease_worker_id = :worker_id)
    RETURNING {_CLAIM_COLUMNS}
"""


def _pick(flow_filter: str) -> str:
    return f"""
    SELECT e.id FROM {{p}}executions e
    WHERE e.status = 'created' AND e.available_at <= :now {flow_filter}
      AND {_TAKEOVER}
    ORDER BY e.priority, e.available_at, e.id
    LIMIT :limit
    """


PICK_RUNNABLE = _pick("")
PICK_RUNNABLE_FOR_FLOWS = _pick("AND e.flow_id IN (SELECT value FROM json_each(:flow_ids))")

CLAIM_PICKED = f"""
    UPDATE {{p}}executions SET {_LEASE_TAKEN}
    WHERE id IN (SELECT value FROM json_each(:ids)) AND {_TAKEOVER}
    RETURNING {_CLAIM_COLUMNS}
"""

# `claim_and_start`: the picked executions claimed and started by the same write.
START_PICKED = f"""
    UPDATE {{p}}executions SET
        status = 'running', started_at = COALESCE(started_at, :now), {_LEASE_TAKEN}
    WHERE id IN (SELECT value FROM json_each(:ids)) AND {_TAKEOVER}
    RETURNING {_E}, id AS execution_id
"""

RELEASE = f"""
    UPDATE {{p}}executions SET
        {_END_CLAIM}
        available_at = CASE WHEN status = 'created' THEN :now ELSE available_at END,
        {_TOUCH}
    WHERE id = :id AND processing_worker_id = :worker_id
      AND (:epoch IS NULL OR claim_epoch = :epoch)
    RETURNING id
"""

EXTEND = f"""
    UPDATE {{p}}executions AS e SET
        lease_expires_at = :now + :timeout_ms * 1000,
        lease_heartbeat_at = :now
    FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS epoch
          FROM json_each(:pairs)) AS h
    WHERE e.id = h.id AND e.lease_worker_id = :worker_id AND {_LIVE_CLAIM}
      AND (h.epoch IS NULL OR e.claim_epoch = h.epoch)
    RETURNING id AS execution_id
"""

ACTIVE_CLAIMS = f"""
    SELECT {_CLAIM_COLUMNS} FROM {{p}}executions
    WHERE {_LIVE_CLAIM} ORDER BY lease_claimed_at, id
"""

ACTIVE_CLAIMS_OF_WORKER = f"""
    SELECT {_CLAIM_COLUMNS} FROM {{p}}executions
    WHERE {_LIVE_CLAIM} AND lease_worker_id = :worker_id ORDER BY lease_claimed_at, id
"""

CLAIM_ROW = f"""
    SELECT {_CLAIM_COLUMNS} FROM {{p}}executions WHERE id = :id AND lease_status IS NOT NULL
"""

EXPIRE_CLAIMS = """
    UPDATE {p}executions SET lease_status = 'expired'
    WHERE lease_status = 'active' AND lease_expires_at <= :now
"""

# ------------------------------------------------------------------ failures and recovery

SET_FAILURE_INFO = f"""
    UPDATE {{p}}executions SET
        failure_count = :failure_count, last_failure_reason = :reason,
        last_failure_at = :now, {_TOUCH}
    WHERE id = :id
"""

_GIVES_UP = "(:max_failures IS NOT NULL AND failure_count + :increment >= :max_failures)"

RETRY = f"""
    UPDATE {{p}}executions SET
        failure_count = failure_count + :increment,
        last_failure_reason = CASE WHEN :increment = 1 THEN :reason
                                   ELSE last_failure_reason END,
        last_failure_at = CASE WHEN :increment = 1 THEN :now ELSE last_failure_at END,
        status = CASE WHEN {_GIVES_UP} THEN 'failed' ELSE 'created' END,
        completed_at = CASE WHEN {_GIVES_UP} THEN :now END,
        error_message = CASE WHEN {_GIVES_UP} THEN :reason ELSE error_message END,
        error_node_id = COALESCE(:error_node_id, error_node_id),
        available_at = :now + :delay_ms * 1000,
        {_END_CLAIM}
        {_TOUCH}
    WHERE id = :id AND status IN ('running', 'paused')
      AND processing_worker_id = :worker_id AND claim_epoch = :epoch
    RETURNING {_E}
"""

# A worker is dead unless its lease is live.
_DEAD_WORKER = f"e.status IN ('running', 'paused') AND {_TAKEOVER}"

NEEDING_RECOVERY = f"""
    SELECT {_E_QUALIFIED}
    FROM {{p}}executions e
    WHERE {_DEAD_WORKER}
    ORDER BY e.updated_at, e.id
    LIMIT :limit
"""

RECOVERY_VICTIMS = f"""
    SELECT e.id, e.status AS previous_status, e.processing_worker_id AS previous_worker_id,
           e.failure_count,
           e.lease_status AS claim_status
    FROM {{p}}executions e
    WHERE {_DEAD_WORKER}
    ORDER BY e.updated_at, e.id
    LIMIT :limit
"""

# The recovery writes (store/recovery.py) arrive as a JSON array of objects, one per victim;
# the failure count itself is incremented here.
_RECOVERY_WRITES = """
    SELECT json_extract(value, '$.id') AS id,
           json_extract(value, '$.status') AS status,
           json_extract(value, '$.last_failure_reason') AS last_failure_reason,
           json_extract(value, '$.error_message') AS error_message,
           json_extract(value, '$.backoff_ms') AS backoff_ms,
           json_extract(value, '$.record_reason') AS record_reason,
           json_extract(value, '$.previous_status') AS previous_status,
           json_extract(value, '$.previous_worker_id') AS previous_worker_id
    FROM json_each(:writes)
"""

APPLY_RECOVERY = f"""
    UPDATE {{p}}executions AS e SET
        failure_count = e.failure_count + 1,
        last_failure_reason = v.last_failure_reason,
        last_failure_at = :now,
        status = v.status,
        completed_at = CASE WHEN v.status = 'failed' THEN :now END,
        error_message = COALESCE(v.error_message, e.error_message),
        available_at = :now + v.backoff_ms * 1000,
        processing_worker_id = NULL,
        processing_started_at = NULL,
        {_TOUCH}
    FROM ({_RECOVERY_WRITES}) AS v
    WHERE e.id = v.id
"""

RECORD_RECOVERIES = f"""
    INSERT INTO {{p}}execution_recovery (
        execution_id, recovered_at, recovered_by_worker, recovery_reason,
        previous_status, previous_worker_id)
    SELECT v.id, :now, :worker_id, v.record_reason, v.previous_status, v.previous_worker_id
    FROM ({_RECOVERY_WRITES}) AS v
    RETURNING *
"""

INSERT_RECOVERY = """
    INSERT INTO {p}execution_recovery (
        execution_id, recovered_at, recovered_by_worker, recovery_reason,
        previous_status, previous_worker_id)
    SELECT id, :now, :worker_id, :reason, :previous_status, :previous_worker_id
    FROM {p}executions WHERE id = :id
    RETURNING *
"""

RECOVERY_HISTORY = """
    SELECT * FROM {p}execution_recovery WHERE execution_id = :id ORDER BY recovered_at, id
"""

# ------------------------------------------------------------------ the event log

# Reserve `:n` indexes on the execution row: the new event_count is one past the last of them.
# The write lock of BEGIN IMMEDIATE makes the indexes gapless.
RESERVE_EVENTS = """
    UPDATE {p}executions SET event_count = event_count + :n WHERE id = :id
    RETURNING event_count
"""
RESERVE_EVENTS_FENCED = """
    UPDATE {p}executions SET event_count = event_count + :n
    WHERE id = :id AND processing_worker_id = :worker_id AND claim_epoch = :epoch
    RETURNING event_count
"""
INSERT_EVENT = """
    INSERT INTO {p}execution_events (execution_id, idx, type, at, attempt, data)
    VALUES (:id, :idx, :type, :now, :attempt, :data)
"""
PRIOR_STATUS = "SELECT status FROM {p}executions WHERE id = :id"

_EVENT_COLUMNS = "execution_id, idx, type, at, attempt, data"
EVENTS_PAGE = f"""
    SELECT {_EVENT_COLUMNS} FROM {{p}}execution_events
    WHERE execution_id = :id AND idx >= :from_index
    ORDER BY idx LIMIT :limit
"""
EVENTS_PAGE_OF_TYPES = f"""
    SELECT {_EVENT_COLUMNS} FROM {{p}}execution_events
    WHERE execution_id = :id AND idx >= :from_index
      AND type IN (SELECT value FROM json_each(:types))
    ORDER BY idx LIMIT :limit
"""

# ------------------------------------------------------------------ operations

_PURGEABLE_ROOTS = """
    FROM {p}executions r INDEXED BY {p}executions_finished_roots
    WHERE r.parent_execution_id IS NULL
      AND r.status IN ('completed', 'failed', 'stopped') AND r.completed_at < :before
      AND r.status IN (SELECT value FROM json_each(:statuses))
      AND NOT EXISTS (
          SELECT 1 FROM {p}executions d
          WHERE d.root_execution_id = r.id
            AND d.status NOT IN ('completed', 'failed', 'stopped'))
"""
"""Roots retention may remove: finished in one of `statuses` before `before`, whole tree done.
Retention walks `executions_finished_roots` by age whichever statuses it keeps; named, since on
few rows SQLite would rather look statuses up in `executions_roots_by_status` and sort them."""

PURGEABLE_COUNT = "SELECT count(*) AS n" + _PURGEABLE_ROOTS

PURGE_ROOTS = "SELECT r.id" + _PURGEABLE_ROOTS + """
    ORDER BY r.completed_at
    LIMIT :limit
"""

TREES_DEEPEST_FIRST = """
    SELECT id FROM {p}executions
    WHERE root_execution_id IN (SELECT value FROM json_each(:roots))
    ORDER BY execution_depth DESC
"""

STATS_BY_STATUS = "SELECT status, count(*) AS n FROM {p}executions GROUP BY status"

STATS_EXTRA = """
    SELECT
        (SELECT count(*) FROM {p}executions WHERE lease_status = 'active'
            AND lease_expires_at > :now) AS active_claims,
        (SELECT min(available_at) FROM {p}executions
            WHERE status = 'created' AND available_at <= :now) AS oldest_queued_at,
        (SELECT count(*) FROM {p}execution_recovery
            WHERE recovered_at > :now - 3600000000) AS recoveries_last_hour
"""

# ------------------------------------------------------------------ migrations

MIGRATIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS {p}schema_migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        applied_at INTEGER NOT NULL
    ) STRICT
"""
APPLIED_MIGRATIONS = "SELECT version FROM {p}schema_migrations"
RECORD_MIGRATION = """
    INSERT INTO {p}schema_migrations (version, name, applied_at) VALUES (:version, :name, :now)
"""
