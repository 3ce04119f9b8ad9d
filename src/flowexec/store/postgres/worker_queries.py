"""Every PostgreSQL statement of the worker registry (store/workers.py), each under a name."""

from __future__ import annotations

from flowexec.store.postgres.queries import EXTEND

_TTL = "make_interval(secs => %(ttl_ms)s / 1000.0)"

_WORKER_COLUMNS = """
    id AS worker_id, host, pid, flow_ids, concurrency, version, started_at, last_seen_at,
    expires_at, expires_at > now() AS live
"""

_SERVED_BY_REMOVED = """
    served AS (
        INSERT INTO {p}worker_flows AS f (flow_id, last_served_at, last_worker_id)
        SELECT DISTINCT ON (flow_id) flow_id, now(), id
        FROM removed, jsonb_array_elements_text(removed.flow_ids) AS flow_id
        ORDER BY flow_id, id
        ON CONFLICT (flow_id) DO UPDATE SET
            last_served_at = EXCLUDED.last_served_at, last_worker_id = EXCLUDED.last_worker_id
    )
"""

REGISTER_WORKER = f"""
    WITH registered AS (
        INSERT INTO {{p}}workers AS w (id, host, pid, flow_ids, concurrency, version, started_at,
                                     last_seen_at, expires_at)
        VALUES (%(worker_id)s, %(host)s, %(pid)s, %(flow_ids)s::jsonb, %(concurrency)s,
                %(version)s, now(), now(), now() + {_TTL})
        ON CONFLICT (id) DO UPDATE SET
            host = EXCLUDED.host, pid = EXCLUDED.pid, flow_ids = EXCLUDED.flow_ids,
            concurrency = EXCLUDED.concurrency, version = EXCLUDED.version,
            started_at = EXCLUDED.started_at, last_seen_at = EXCLUDED.last_seen_at,
            expires_at = EXCLUDED.expires_at
        RETURNING {_WORKER_COLUMNS}
    ), served AS (
        INSERT INTO {{p}}worker_flows (flow_id, last_served_at, last_worker_id)
        SELECT flow_id, now(), %(worker_id)s
        FROM jsonb_array_elements_text(%(flow_ids)s::jsonb) AS flow_id
        ON CONFLICT (flow_id) DO UPDATE SET
            last_served_at = EXCLUDED.last_served_at, last_worker_id = EXCLUDED.last_worker_id
    )
    SELECT * FROM registered
"""

KEEP_ALIVE = f"""
    WITH seen AS (
        UPDATE {{p}}workers SET last_seen_at = now(), expires_at = now() + {_TTL}
        WHERE id = %(worker_id)s
        RETURNING id
    ), renewed AS ({EXTEND})
    SELECT EXISTS (SELECT 1 FROM seen) AS present,
           ARRAY(SELECT execution_id FROM renewed) AS renewed
"""
"""The heartbeat: the worker's presence and its leases, in one statement."""

REMOVE_WORKER = f"""
    WITH removed AS (
        DELETE FROM {{p}}workers WHERE id = %(worker_id)s RETURNING id, flow_ids
    ), {_SERVED_BY_REMOVED}
    SELECT id FROM removed
"""

REMOVE_DEAD_WORKERS = f"""
    WITH removed AS (
        DELETE FROM {{p}}workers WHERE expires_at <= now() RETURNING id, flow_ids
    ), {_SERVED_BY_REMOVED}
    SELECT id FROM removed ORDER BY id
"""

WORKERS = f"SELECT {_WORKER_COLUMNS} FROM {{p}}workers ORDER BY host, started_at, id"

SERVED_FLOWS = "SELECT flow_id, last_served_at FROM {p}worker_flows ORDER BY flow_id"

QUEUED_BY_FLOW = """
    SELECT flow_id, count(*) AS queued FROM {p}executions
    WHERE status = 'created' AND available_at IS NOT NULL
    GROUP BY flow_id ORDER BY flow_id
"""
