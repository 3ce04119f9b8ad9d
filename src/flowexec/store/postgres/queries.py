"""Every PostgreSQL statement flowexec runs, each under a name.

`{p}` is the validated table prefix, filled in once per store; values are always parameters.
A claim's lease lives on its execution row (migration 0009), so every transition writes one
row. Predicates stay plain (no `param IS NULL OR ...` on
indexed columns) so that generic plans of prepared statements keep using their indexes.
"""

from __future__ import annotations

import itertools

from flowexec.store.postgres.checkpoints import RECORD_CHECKPOINTS

EXECUTION_COLUMNS = """
    id, flow_id, owner_id, root_execution_id, parent_execution_id, status, created_at,
    updated_at, started_at, completed_at, error_message, error_node_id, execution_depth,
    options, integration, external_events, result, failure_count, last_failure_reason,
    last_failure_at, processing_started_at, processing_worker_id, available_at, claim_epoch,
    priority, idempotency_key
"""

_E = EXECUTION_COLUMNS
_E_QUALIFIED = ", ".join("e." + c.strip() for c in _E.split(","))
_LIVE_CLAIM = "e.lease_status = 'active' AND e.lease_expires_at > now()"
# Ends a live lease in the statement that ends the claim: one write to one row.
_RELEASE_LEASE = """
    lease_status = CASE WHEN lease_status = 'active' THEN 'released' ELSE lease_status END,"""
# The lease as a claim record (`Claim`), read off the execution row `e`.
_CLAIM_COLUMNS = """e.id AS execution_id, e.lease_worker_id AS worker_id,
    e.lease_claimed_at AS claimed_at, e.lease_expires_at AS expires_at,
    e.lease_heartbeat_at AS heartbeat_at, e.lease_status AS status, e.claim_epoch AS epoch"""

def notify_events(ids: str) -> str:
    """At most one NOTIFY for a statement that logged events, and only when someone follows
    one of those executions (`event_subscribers`, registered by `wait_for_events`): NOTIFY
    takes a database-wide lock at commit, which a drain nobody watches should not pay for.
    The payload is the followed execution ids, space-separated, or '' ("look at every
    execution") when they would not fit NOTIFY's 8000-byte payload."""
    return f"""(SELECT pg_notify(%(events_channel)s,
                    CASE WHEN octet_length(joined) <= 7900 THEN joined ELSE '' END)
              FROM (SELECT string_agg(id, ' ') AS joined FROM ({ids}) AS logged_ids
                    WHERE EXISTS (
                        SELECT 1 FROM {{p}}event_subscribers s
                        WHERE s.execution_id = logged_ids.id AND s.expires_at > now())) AS j
              WHERE joined IS NOT NULL)"""


_NOTIFY_DONE = notify_events("SELECT id FROM done")

# A delayed start runs at `run_at`, never before now: a past time queues it as of now.
_AVAILABLE_AT = """CASE WHEN %(start)s
    THEN GREATEST(now(), COALESCE(%(run_at)s::timestamptz, now())) END"""

# Any unique conflict leaves the row out: the id (a retry, or another execution's id) or the
# flow's idempotency key (the facade then returns the execution that holds it).
INSERT_ROOT = f"""
    WITH ins AS (
        INSERT INTO {{p}}executions (
            id, flow_id, owner_id, root_execution_id, parent_execution_id, status, created_at,
            updated_at, execution_depth, options, integration, external_events, available_at,
            priority, idempotency_key)
        VALUES (%(id)s, %(flow_id)s, %(owner_id)s, %(root_execution_id)s, NULL, %(status)s,
            %(created_at)s, %(updated_at)s, %(execution_depth)s, %(options)s::jsonb,
            %(integration)s::jsonb, %(external_events)s::jsonb, {_AVAILABLE_AT},
            %(priority)s, %(idempotency_key)s)
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT id, CASE WHEN %(start)s THEN pg_notify(%(channel)s, '') END FROM ins
"""

# The parent row is share-locked so that a fenced child cannot slip in after a takeover.
INSERT_CHILD = f"""
    WITH parent AS (
        SELECT id FROM {{p}}executions
        WHERE id = %(parent_execution_id)s
          AND root_execution_id = %(root_execution_id)s
          AND execution_depth + 1 = %(execution_depth)s
          AND (%(fence_worker)s::text IS NULL
               OR (processing_worker_id = %(fence_worker)s AND claim_epoch = %(fence_epoch)s))
        FOR SHARE
    ), ins AS (
        INSERT INTO {{p}}executions (
            id, flow_id, owner_id, root_execution_id, parent_execution_id, status, created_at,
            updated_at, execution_depth, options, integration, external_events, available_at,
            priority, idempotency_key)
        SELECT %(id)s, %(flow_id)s, %(owner_id)s, %(root_execution_id)s, parent.id, %(status)s,
            %(created_at)s, %(updated_at)s, %(execution_depth)s, %(options)s::jsonb,
            %(integration)s::jsonb, %(external_events)s::jsonb, {_AVAILABLE_AT},
            %(priority)s, %(idempotency_key)s
        FROM parent
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT id, CASE WHEN %(start)s THEN pg_notify(%(channel)s, '') END FROM ins
"""

# create_many: one statement per batch, its rows one JSON array of objects named like
# INSERT_ROOT's parameters (one value to bind; arrays cost a conversion per element and column).
# The tree fields inside the batch were checked in Python; each row's anchor (the stored
# execution its ancestry in the batch hangs from) is checked and share-locked as INSERT_CHILD
# checks a parent. Rows go in by id, so that two batches sharing ids wait on each other in one
# order and never deadlock. One NOTIFY.
INSERT_MANY = """
    WITH batch AS (
        SELECT * FROM json_to_recordset(%(rows)s::json) AS b (
            id text, flow_id text, owner_id text, root_execution_id text,
            parent_execution_id text, status text, created_at timestamptz,
            updated_at timestamptz, execution_depth int, options text, integration text,
            external_events text, anchor_id text, anchor_depth int, run_at timestamptz,
            priority int, idempotency_key text)
    ), anchor AS (
        SELECT id, root_execution_id, execution_depth FROM {p}executions
        WHERE id IN (SELECT anchor_id FROM batch)
        FOR SHARE
    ), ins AS (
        INSERT INTO {p}executions (
            id, flow_id, owner_id, root_execution_id, parent_execution_id, status, created_at,
            updated_at, execution_depth, options, integration, external_events, available_at,
            priority, idempotency_key)
        SELECT b.id, b.flow_id, b.owner_id, b.root_execution_id, b.parent_execution_id,
            b.status, b.created_at, b.updated_at, b.execution_depth, b.options::jsonb,
            b.integration::jsonb, b.external_events::jsonb,
            CASE WHEN %(start)s THEN GREATEST(now(), COALESCE(b.run_at, now())) END,
            b.priority, b.idempotency_key
        FROM batch b
        WHERE b.anchor_id IS NULL
           OR EXISTS (SELECT 1 FROM anchor a
                      WHERE a.id = b.anchor_id
                        AND a.root_execution_id = b.root_execution_id
                        AND a.execution_depth = b.anchor_depth)
        ORDER BY b.id
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT coalesce(array_agg(id), '{}') AS ids,
           CASE WHEN %(start)s AND count(*) > 0 THEN pg_notify(%(channel)s, '') END AS notified
    FROM ins
"""

GET = f"SELECT {_E} FROM {{p}}executions WHERE id = %(id)s"

GET_MANY = f"SELECT {_E} FROM {{p}}executions WHERE id = ANY(%(ids)s)"

GET_BY_KEY = f"""
    SELECT {_E} FROM {{p}}executions
    WHERE flow_id = %(flow_id)s AND idempotency_key = %(idempotency_key)s
"""

# What create_many's settling reads: the rows of ids its insert left out, and the rows holding
# the idempotency keys it asked for.
SETTLE_ROWS = f"""
    SELECT {_E} FROM {{p}}executions WHERE id = ANY(%(ids)s)
    UNION
    SELECT {_E} FROM {{p}}executions
    WHERE (flow_id, idempotency_key) IN (
        SELECT * FROM unnest(%(key_flows)s::text[], %(keys)s::text[]))
"""

DELETE_TREE = "DELETE FROM {p}executions WHERE id = %(id)s RETURNING id"

# Not started yet, or waiting for a delayed start or a retry's backoff; never a claimed one.
MAKE_RUNNABLE = """
    UPDATE {p}executions SET available_at = now(), updated_at = now()
    WHERE id = %(id)s AND status = 'created' AND processing_worker_id IS NULL
      AND (available_at IS NULL OR available_at > now())
    RETURNING id, pg_notify(%(channel)s, '')
"""

_FENCE = """
    AND (%(fence_worker)s::text IS NULL
         OR (processing_worker_id = %(fence_worker)s AND claim_epoch = %(fence_epoch)s))
"""

# Every status write locks its row first (legal source, fence) to learn the status it leaves,
# which picks its lifecycle event from `events` (store/lifecycle.py), logged by the same
# statement at the next index.
_STATUS_PRIOR = f"""
    prior AS (
        SELECT id AS prior_id, status AS prior_status FROM {{p}}executions
        WHERE id = %(id)s AND status = ANY(%(sources)s) {_FENCE}
        FOR UPDATE
    )
"""
_STATUS_GUARD = """
        event_count = event_count + 1
    FROM prior WHERE id = prior.prior_id
    RETURNING id, event_count - 1 AS event_index, prior.prior_status
"""
_STATUS_LOGGED = """
    logged AS (
        INSERT INTO {p}execution_events (execution_id, idx, type, at, attempt, data)
        SELECT id, event_index, ev ->> 'type', now(), %(attempt)s, ev -> 'data'
        FROM done, LATERAL (SELECT %(events)s::jsonb -> done.prior_status AS ev) AS pick
    )
"""
_CLEAR_PROCESSING = "processing_worker_id = NULL, processing_started_at = NULL,"
_END_CLAIM = _CLEAR_PROCESSING + _RELEASE_LEASE

STATUS_RUN = f"""
    WITH {_STATUS_PRIOR}, done AS (
        UPDATE {{p}}executions SET
            status = 'running',
            started_at = COALESCE(started_at, %(started_at)s, now()),
            error_message = COALESCE(%(error_message)s, error_message),
            error_node_id = COALESCE(%(error_node_id)s, error_node_id),
            updated_at = now(),
        {_STATUS_GUARD}
    ), {_STATUS_LOGGED}
    SELECT id, {_NOTIFY_DONE} AS events_notified FROM done
"""

STATUS_PAUSE = f"""
    WITH {_STATUS_PRIOR}, done AS (
        UPDATE {{p}}executions SET status = 'paused', updated_at = now(),
        {_STATUS_GUARD}
    ), {_STATUS_LOGGED}
    SELECT id, {_NOTIFY_DONE} AS events_notified FROM done
"""

STATUS_FINISH = f"""
    WITH {_STATUS_PRIOR}, done AS (
        UPDATE {{p}}executions SET
            status = %(status)s,
            completed_at = COALESCE(%(completed_at)s, now()),
            error_message = %(error_message)s,
            error_node_id = %(error_node_id)s,
            result = %(result)s::jsonb,
            {_END_CLAIM}
            updated_at = now(),
        {_STATUS_GUARD}
    ), {_STATUS_LOGGED}
    SELECT id, {_NOTIFY_DONE} AS events_notified FROM done
"""

STATUS_REQUEUE = f"""
    WITH {_STATUS_PRIOR}, done AS (
        UPDATE {{p}}executions SET
            status = 'created',
            completed_at = NULL,
            error_message = COALESCE(%(error_message)s, error_message),
            error_node_id = COALESCE(%(error_node_id)s, error_node_id),
            available_at = now(),
            {_END_CLAIM}
            updated_at = now(),
        {_STATUS_GUARD}
    ), {_STATUS_LOGGED}
    SELECT id, pg_notify(%(channel)s, ''), {_NOTIFY_DONE} AS events_notified FROM done
"""

# Aggregates for the whole page in one grouped query over the tree index (docs/architecture.md
# §2). `= ANY (ARRAY(...))` is an index condition, so a generic plan cannot turn it into a full
# scan.
ROOT_PAGE_AGGREGATES = """
    , agg AS (
        SELECT root_execution_id, max(execution_depth) AS levels, count(*) - 1 AS total_nested
        FROM {p}executions WHERE root_execution_id = ANY (ARRAY(SELECT id FROM page))
        GROUP BY root_execution_id
    )
    SELECT page.*, agg.levels, agg.total_nested
    FROM page JOIN agg ON agg.root_execution_id = page.id
    ORDER BY page.created_at DESC, page.id DESC
"""


def _root_page(where: str) -> str:
    return f"""
    WITH page AS (
        SELECT {_E} FROM {{p}}executions
        WHERE flow_id = %(flow_id)s AND parent_execution_id IS NULL {where}
        ORDER BY created_at DESC, id DESC
        LIMIT %(limit)s
    )
    {ROOT_PAGE_AGGREGATES}
    """


_AFTER = "AND (created_at, id) < (%(after_created)s, %(after_id)s)"
_OWNER = "AND owner_id = %(owner_id)s"
_STATUS = "AND status = %(status)s"
ROOT_PAGE = {
    (cursor, owner, status): _root_page(
        " ".join(f for f, on in ((_AFTER, cursor), (_OWNER, owner), (_STATUS, status)) if on)
    )
    for cursor, owner, status in itertools.product((False, True), repeat=3)
}
"""Keyed by (has cursor, has owner filter, has status filter)."""

CHILDREN = f"""
    SELECT {_E} FROM {{p}}executions WHERE parent_execution_id = %(id)s
    ORDER BY created_at, id
"""

SUBTREE = f"""
    WITH RECURSIVE sub (id, level) AS (
        SELECT id, 0 FROM {{p}}executions WHERE id = %(id)s
        UNION ALL
        SELECT c.id, sub.level + 1
        FROM {{p}}executions c JOIN sub ON c.parent_execution_id = sub.id
    ), bounded AS (
        SELECT id, level FROM sub ORDER BY level, id LIMIT %(max_nodes)s
    )
    SELECT {_E_QUALIFIED}, bounded.level
    FROM bounded JOIN {{p}}executions e ON e.id = bounded.id
    ORDER BY bounded.level, bounded.id
"""

STATUSES = "SELECT id, status FROM {p}executions WHERE id = ANY(%(ids)s)"

# A worker's returned runs, completed as `update_execution_status` would: fenced, from
# `running` only, claim released. `unnest` pairs each id with its epoch and result.
_COMPLETE_RUNS = f"""
    done AS (
        UPDATE {{p}}executions e SET
            status = 'completed', completed_at = now(), error_message = NULL,
            error_node_id = NULL, result = v.result::jsonb, {_END_CLAIM}
            updated_at = now(), event_count = e.event_count + 1
        FROM unnest(%(done_ids)s::text[], %(done_epochs)s::bigint[], %(done_results)s::text[])
             AS v (id, epoch, result)
        WHERE e.id = v.id AND e.status = 'running'
          AND e.processing_worker_id = %(worker_id)s AND e.claim_epoch = v.epoch
        RETURNING e.id, e.flow_id, e.event_count - 1 AS event_index, v.epoch
    ),
"""

# The lifecycle events of claim_and_start: completed for each completion written, started for
# each execution started; one NOTIFY for the statement.
_START_LOGGED = """
    , logged AS (
        INSERT INTO {p}execution_events (execution_id, idx, type, at, attempt, data)
        SELECT id, event_index, %(completed_event)s::jsonb ->> 'type', now(), epoch,
               %(completed_event)s::jsonb -> 'data'
        FROM done
        UNION ALL
        SELECT id, event_index, %(started_event)s::jsonb ->> 'type', now(), claim_epoch,
               %(started_event)s::jsonb -> 'data'
        FROM marked
    )
"""



def _claim(picked: str, takeover: str, *, start: bool = False) -> str:
    """Claim the `picked` executions: one UPDATE of each execution row takes the lease (the
    next epoch) and sets the processing fields.

    Claims come back in the order picked. A claimed execution is not available again before its
    lease runs out, so `available_at`
    moves to the lease's end: the runnable index then never walks over claimed rows. The
    `= ANY (ARRAY(...))` keeps the marking on the primary key under a generic plan, which
    otherwise hashed the whole executions table on every claim.

    `start` is `claim_and_start`: completions first (`done`), executions marked `running` and
    returned whole, and always one row at least, which carries the completed ids.
    """
    starting = (
        "status = 'running', started_at = COALESCE(e.started_at, now()), "
        "event_count = e.event_count + 1,"
        if start else ""
    )
    returning = (
        f"{_E_QUALIFIED}, e.event_count - 1 AS event_index" if start else _CLAIM_COLUMNS
    )
    notified = notify_events("SELECT id FROM done UNION ALL SELECT id FROM marked")
    result = (
        f"""{_START_LOGGED}
    SELECT started.*, finished.completed
    FROM (SELECT ARRAY(SELECT id FROM done) AS completed, {notified} AS notified) AS finished
    LEFT JOIN marked AS started ON true"""
        if start
        else "SELECT marked.* FROM marked JOIN picked ON picked.id = marked.execution_id"
        " ORDER BY picked.nth"
    )
    return f"""
    WITH {_COMPLETE_RUNS if start else ""}
    picked AS (SELECT id, row_number() OVER () AS nth FROM ({picked}) AS in_order),
    marked AS (
        UPDATE {{p}}executions e SET
            {starting}
            processing_worker_id = %(worker_id)s,
            processing_started_at = now(),
            claim_epoch = e.claim_epoch + 1,
            lease_worker_id = %(worker_id)s,
            lease_status = 'active',
            lease_claimed_at = now(),
            lease_heartbeat_at = now(),
            lease_expires_at = now() + make_interval(secs => %(timeout_ms)s / 1000.0),
            available_at = now() + make_interval(secs => %(timeout_ms)s / 1000.0),
            updated_at = now()
        WHERE e.id = ANY (ARRAY(SELECT id FROM picked)) AND ({takeover})
        RETURNING {returning}
    )
    {result}
    """


# A lease may be taken when it is not live (never taken, released, expired, or past
# expires_at); `claim_execution` also lets the holder re-claim, with a new epoch.
_TAKEOVER = f"({_LIVE_CLAIM}) IS NOT TRUE"

CLAIM_ONE = _claim(
    """
        SELECT id FROM {p}executions
        WHERE id = %(id)s AND (status = 'running'
              OR (status = 'created' AND (available_at <= now()
                                          OR processing_worker_id = %(worker_id)s)))
        FOR UPDATE
    """,
    f"{_TAKEOVER} OR e.lease_worker_id = %(worker_id)s",
)


def _pick_runnable(flow_filter: str, limit: str = "%(limit)s") -> str:
    """A candidate is skipped when it holds a live lease, read off its own row."""
    return f"""
        SELECT e.id FROM {{p}}executions e
        WHERE e.status = 'created' AND e.available_at <= now() {flow_filter}
          AND {_TAKEOVER}
        ORDER BY e.priority, e.available_at, e.id
        LIMIT {limit}
        FOR UPDATE OF e SKIP LOCKED
        """


# claim_and_start may take one more execution for each completion written, which only the
# statement knows: the inner LIMIT is the most it may take (a plain parameter, so the plan
# stays on the runnable index) and the outer one trims it. Rows are locked only as the outer
# LIMIT pulls them.
def _pick_runnable_for_start(flow_filter: str) -> str:
    inner = _pick_runnable(flow_filter, limit="%(most)s")
    return f"SELECT id FROM ({inner}) AS candidates LIMIT %(limit)s + (SELECT count(*) FROM done)"


_FOR_FLOWS = "AND e.flow_id = ANY(%(flow_ids)s)"
CLAIM_BATCH = _claim(_pick_runnable(""), _TAKEOVER)
CLAIM_BATCH_FOR_FLOWS = _claim(_pick_runnable(_FOR_FLOWS), _TAKEOVER)
CLAIM_AND_START = _claim(_pick_runnable_for_start(""), _TAKEOVER, start=True)
CLAIM_AND_START_FOR_FLOWS = _claim(_pick_runnable_for_start(_FOR_FLOWS), _TAKEOVER, start=True)

RELEASE = f"""
    UPDATE {{p}}executions SET
        {_END_CLAIM} updated_at = now(),
        available_at = CASE WHEN status = 'created' THEN now() ELSE available_at END
    WHERE id = %(id)s AND processing_worker_id = %(worker_id)s
      AND (%(epoch)s::bigint IS NULL OR claim_epoch = %(epoch)s)
    RETURNING id
"""
# No NOTIFY on release: NOTIFY serialises commits on a global lock, and a released execution
# is found by the next claim or poll (in this process the store wakes its own waiters).

# A heartbeat writes two columns no index names (not even updated_at): a HOT update.
EXTEND = f"""
    UPDATE {{p}}executions e SET
        lease_expires_at = now() + make_interval(secs => %(timeout_ms)s / 1000.0),
        lease_heartbeat_at = now()
    FROM unnest(%(ids)s::text[], %(epochs)s::bigint[]) AS h (id, epoch)
    WHERE e.id = ANY (%(ids)s::text[]) AND e.id = h.id AND e.lease_worker_id = %(worker_id)s
      AND {_LIVE_CLAIM} AND (h.epoch IS NULL OR e.claim_epoch = h.epoch)
    RETURNING e.id AS execution_id
"""

ACTIVE_CLAIMS = f"""
    SELECT {_CLAIM_COLUMNS} FROM {{p}}executions e
    WHERE {_LIVE_CLAIM} ORDER BY e.lease_claimed_at, e.id
"""

ACTIVE_CLAIMS_OF_WORKER = f"""
    SELECT {_CLAIM_COLUMNS} FROM {{p}}executions e
    WHERE {_LIVE_CLAIM} AND e.lease_worker_id = %(worker_id)s
    ORDER BY e.lease_claimed_at, e.id
"""

CLAIM_ROW = f"""
    SELECT {_CLAIM_COLUMNS} FROM {{p}}executions e
    WHERE e.id = %(id)s AND e.lease_status IS NOT NULL
"""

EXPIRE_CLAIMS = """
    UPDATE {p}executions SET lease_status = 'expired'
    WHERE lease_status = 'active' AND lease_expires_at <= now()
"""

SET_FAILURE_INFO = """
    UPDATE {p}executions SET
        failure_count = %(failure_count)s, last_failure_reason = %(reason)s,
        last_failure_at = now(), updated_at = now()
    WHERE id = %(id)s
"""

_GIVES_UP = """(%(max_failures)s::int IS NOT NULL
    AND failure_count + %(increment)s >= %(max_failures)s)"""

RETRY = f"""
    WITH done AS (
        UPDATE {{p}}executions SET
            failure_count = failure_count + %(increment)s,
            last_failure_reason = CASE WHEN %(increment)s = 1 THEN %(reason)s
                                       ELSE last_failure_reason END,
            last_failure_at = CASE WHEN %(increment)s = 1 THEN now() ELSE last_failure_at END,
            status = CASE WHEN {_GIVES_UP} THEN 'failed' ELSE 'created' END,
            completed_at = CASE WHEN {_GIVES_UP} THEN now() END,
            error_message = CASE WHEN {_GIVES_UP} THEN %(reason)s ELSE error_message END,
            error_node_id = COALESCE(%(error_node_id)s, error_node_id),
            available_at = now() + make_interval(secs => %(delay_ms)s / 1000.0),
            {_END_CLAIM}
            updated_at = now(),
            event_count = event_count + 1
        WHERE id = %(id)s AND status IN ('running', 'paused')
          AND processing_worker_id = %(worker_id)s AND claim_epoch = %(epoch)s
        RETURNING {_E}, event_count - 1 AS event_index
    ), logged AS (
        INSERT INTO {{p}}execution_events (execution_id, idx, type, at, attempt, data)
        SELECT id, event_index, ev ->> 'type', now(), %(epoch)s, ev -> 'data'
        FROM done, LATERAL (SELECT %(events)s::jsonb -> done.status AS ev) AS pick
    )
    SELECT done.*,
           CASE WHEN done.status = 'created' THEN pg_notify(%(channel)s, '') END AS notified,
           {_NOTIFY_DONE} AS events_notified
    FROM done
"""

# A worker is dead unless its lease is live. The lease is on the row being locked, so a
# takeover that commits while this statement waits is re-checked on the new row version and
# never mistaken for a dead worker.
_DEAD_WORKER = f"e.status IN ('running', 'paused') AND {_TAKEOVER}"

NEEDING_RECOVERY = f"""
    SELECT {_E_QUALIFIED}
    FROM {{p}}executions e
    WHERE {_DEAD_WORKER}
    ORDER BY e.updated_at, e.id
    LIMIT %(limit)s
"""

# Locks the victims: decided in Python (store/recovery.py), written by APPLY_RECOVERY in the
# same transaction, which also marks their lapsed leases expired; SKIP LOCKED lets concurrent
# sweeps share the work instead of counting it twice. A lapsed `active` lease is dead as an
# expired one is (`dead_worker_reason`).
RECOVERY_VICTIMS = f"""
    SELECT e.id, e.failure_count, e.status AS previous_status,
           e.processing_worker_id AS previous_worker_id,
           e.lease_status AS claim_status
    FROM {{p}}executions e
    WHERE {_DEAD_WORKER}
    ORDER BY e.updated_at, e.id
    LIMIT %(limit)s
    FOR UPDATE OF e SKIP LOCKED
"""

# Lists of events (JSON arrays of {"type", "data"}) logged at the indexes their UPDATE just
# reserved: `batch` returns `id`, `next_index` (the new event_count) and `events`.
_LOG_EVENT_LISTS = """
        INSERT INTO {{p}}execution_events (execution_id, idx, type, at, attempt, data)
        SELECT b.id, b.next_index - jsonb_array_length(b.events) + x.ord - 1,
               x.ev ->> 'type', now(), {attempt}, x.ev -> 'data'
        FROM {batch} AS b, jsonb_array_elements(b.events) WITH ORDINALITY AS x (ev, ord)
"""

# One row per victim, as parallel arrays; the failure count itself is incremented here, and
# the victim's lifecycle events (store/lifecycle.py) are logged by the same statement.
APPLY_RECOVERY = f"""
    WITH v AS (
        SELECT * FROM unnest(
            %(id)s::text[], %(status)s::text[], %(last_failure_reason)s::text[],
            %(error_message)s::text[], %(backoff_ms)s::bigint[], %(record_reason)s::text[],
            %(previous_status)s::text[], %(previous_worker_id)s::text[], %(events)s::jsonb[])
        AS v (id, status, last_failure_reason, error_message, backoff_ms, record_reason,
              previous_status, previous_worker_id, events)
    ), updated AS (
        UPDATE {{p}}executions e SET
            failure_count = e.failure_count + 1,
            last_failure_reason = v.last_failure_reason,
            last_failure_at = now(),
            status = v.status,
            completed_at = CASE WHEN v.status = 'failed' THEN now() END,
            error_message = COALESCE(v.error_message, e.error_message),
            available_at = now() + make_interval(secs => v.backoff_ms / 1000.0),
            processing_worker_id = NULL,
            processing_started_at = NULL,
            lease_status = CASE WHEN e.lease_status = 'active' THEN 'expired'
                                ELSE e.lease_status END,
            updated_at = now(),
            event_count = e.event_count + jsonb_array_length(v.events)
        FROM v WHERE e.id = v.id
        RETURNING e.id, e.event_count AS next_index, v.events
    ), logged AS ({_LOG_EVENT_LISTS.format(batch="updated", attempt="0")}), records AS (
        INSERT INTO {{p}}execution_recovery (
            execution_id, recovered_at, recovered_by_worker, recovery_reason,
            previous_status, previous_worker_id)
        SELECT v.id, now(), %(worker_id)s, v.record_reason, v.previous_status,
               v.previous_worker_id
        FROM v JOIN updated u ON u.id = v.id
        RETURNING *
    )
    SELECT records.*, pg_notify(%(channel)s, '') AS notified,
           {notify_events("SELECT id FROM updated")} AS events_notified
    FROM records ORDER BY records.id
"""

INSERT_RECOVERY = """
    INSERT INTO {p}execution_recovery (
        execution_id, recovered_at, recovered_by_worker, recovery_reason,
        previous_status, previous_worker_id)
    SELECT id, now(), %(worker_id)s, %(reason)s, %(previous_status)s, %(previous_worker_id)s
    FROM {p}executions WHERE id = %(id)s
    RETURNING *
"""

RECOVERY_HISTORY = """
    SELECT * FROM {p}execution_recovery WHERE execution_id = %(id)s ORDER BY recovered_at, id
"""

# A worker's buffered events, many executions at once, each fenced by its claim.
APPEND_EVENTS = f"""
    WITH batch AS (
        SELECT * FROM unnest(%(ids)s::text[], %(epochs)s::bigint[], %(events)s::jsonb[],
                             %(checkpoints)s::jsonb[])
        AS b (id, epoch, events, checkpoints)
    ), appended AS (
        UPDATE {{p}}executions e SET event_count = e.event_count + jsonb_array_length(b.events)
        FROM batch b
        WHERE e.id = ANY (%(ids)s::text[]) AND e.id = b.id
          AND e.processing_worker_id = %(worker_id)s AND e.claim_epoch = b.epoch
        RETURNING e.id, e.event_count AS next_index, b.events, b.epoch, b.checkpoints
    ), logged AS ({_LOG_EVENT_LISTS.format(batch="appended", attempt="b.epoch")}
    ), recorded AS ({RECORD_CHECKPOINTS.format(batch="appended")})
    SELECT ARRAY(SELECT id FROM appended) AS appended,
           {notify_events("SELECT id FROM appended")} AS notified
"""

_EVENT_COLUMNS = "execution_id, idx, type, at, attempt, data"
EVENTS_PAGE = f"""
    SELECT {_EVENT_COLUMNS} FROM {{p}}execution_events
    WHERE execution_id = %(id)s AND idx >= %(from_index)s
    ORDER BY idx LIMIT %(limit)s
"""
EVENTS_PAGE_OF_TYPES = f"""
    SELECT {_EVENT_COLUMNS} FROM {{p}}execution_events
    WHERE execution_id = %(id)s AND idx >= %(from_index)s AND type = ANY(%(types)s)
    ORDER BY idx LIMIT %(limit)s
"""

# A subscriber's interest in one execution, so that statements logging its events NOTIFY.
SUBSCRIBE_EVENTS = """
    WITH expired AS (
        DELETE FROM {p}event_subscribers WHERE expires_at < now() - interval '1 minute'
    )
    INSERT INTO {p}event_subscribers (execution_id, subscriber, expires_at)
    VALUES (%(id)s, %(subscriber)s, now() + make_interval(secs => %(ttl_s)s))
    ON CONFLICT (execution_id, subscriber) DO UPDATE SET expires_at = excluded.expires_at
"""

_PURGEABLE_ROOTS = """
    FROM {p}executions r
    WHERE r.parent_execution_id IS NULL
      AND r.status IN ('completed', 'failed', 'stopped') AND r.completed_at < %(before)s
      AND r.status = ANY(%(statuses)s)
      AND NOT EXISTS (
          SELECT 1 FROM {p}executions d
          WHERE d.root_execution_id = r.id
            AND d.status NOT IN ('completed', 'failed', 'stopped'))
"""
"""Roots retention may remove: finished in one of `statuses` before `before`, whole tree done."""

PURGEABLE_COUNT = "SELECT count(*) AS n" + _PURGEABLE_ROOTS

PURGE = """
    WITH doomed AS (
        SELECT r.id""" + _PURGEABLE_ROOTS + """
        ORDER BY r.completed_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM {p}executions WHERE id IN (SELECT id FROM doomed)
"""

STATS_BY_STATUS = "SELECT status, count(*) AS n FROM {p}executions GROUP BY status"

STATS_EXTRA = """
    SELECT
        (SELECT count(*) FROM {p}executions e WHERE e.lease_status = 'active'
            AND e.lease_expires_at > now()) AS active_claims,
        (SELECT min(available_at) FROM {p}executions
            WHERE status = 'created' AND available_at <= now()) AS oldest_queued_at,
        (SELECT count(*) FROM {p}execution_recovery
            WHERE recovered_at > now() - interval '1 hour') AS recoveries_last_hour
"""

NOW = "SELECT now() AS now"
NOTIFY = "SELECT pg_notify(%(channel)s, %(payload)s)"

# Leader leases (docs/architecture.md §6). Taken when free or lapsed, with the next term;
# renewed by the holder that names its term, keeping it; a lapsed lease is taken anew even by
# its last holder, with a new term, so writes fenced by the old one stay refused.
_SAME_LEASE = "l.holder = EXCLUDED.holder AND l.term = %(term)s::bigint AND l.expires_at > now()"
ACQUIRE_LEASE = f"""
    INSERT INTO {{p}}leader_leases AS l (lock_id, holder, term, acquired_at, expires_at)
    VALUES (%(lock_id)s, %(holder)s, 1, now(), now() + make_interval(secs => %(lease_s)s))
    ON CONFLICT (lock_id) DO UPDATE SET
        term = CASE WHEN {_SAME_LEASE} THEN l.term ELSE l.term + 1 END,
        acquired_at = CASE WHEN {_SAME_LEASE} THEN l.acquired_at ELSE now() END,
        holder = EXCLUDED.holder,
        expires_at = EXCLUDED.expires_at
    WHERE l.expires_at <= now() OR {_SAME_LEASE}
    RETURNING term
"""
RELEASE_LEASE = """
    UPDATE {p}leader_leases SET expires_at = now()
    WHERE lock_id = %(lock_id)s AND holder = %(holder)s AND term = %(term)s
      AND expires_at > now()
    RETURNING term
"""
# Inside the leader's write transaction: the row stays locked against a takeover until commit.
LEASE_FENCE = """
    SELECT term FROM {p}leader_leases
    WHERE lock_id = %(lock_id)s AND holder = %(holder)s AND term = %(term)s
      AND expires_at > now()
    FOR SHARE
"""
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(%(namespace)s, %(lock_id)s)"

MIGRATIONS_TABLE = """
    CREATE TABLE IF NOT EXISTS {p}schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
    )
"""
APPLIED_MIGRATIONS = "SELECT version FROM {p}schema_migrations"
RECORD_MIGRATION = """
    INSERT INTO {p}schema_migrations (version, name) VALUES (%(version)s, %(name)s)
"""
