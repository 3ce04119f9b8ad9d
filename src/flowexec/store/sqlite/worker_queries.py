"""Every SQLite statement of the worker registry (store/workers.py), each under a name.

`:now` is the database clock in microseconds, read once per transaction.
"""

from __future__ import annotations

_WORKER_COLUMNS = """
    id AS worker_id, host, pid, flow_ids, concurrency, version, started_at, last_seen_at,
    expires_at, expires_at > :now AS live
"""

REGISTER_WORKER = f"""
    INSERT INTO {{p}}workers (id, host, pid, flow_ids, concurrency, version, started_at,
                              last_seen_at, expires_at)
    VALUES (:worker_id, :host, :pid, :flow_ids, :concurrency, :version, :now, :now,
            :now + :ttl_ms * 1000)
    ON CONFLICT (id) DO UPDATE SET
        host = excluded.host, pid = excluded.pid, flow_ids = excluded.flow_ids,
        concurrency = excluded.concurrency, version = excluded.version,
        started_at = excluded.started_at, last_seen_at = excluded.last_seen_at,
        expires_at = excluded.expires_at
    RETURNING {_WORKER_COLUMNS}
"""

SERVED_BY = """
    INSERT INTO {p}worker_flows (flow_id, last_served_at, last_worker_id)
    SELECT value, :now, :worker_id FROM json_each(:flow_ids) WHERE true
    ON CONFLICT (flow_id) DO UPDATE SET
        last_served_at = excluded.last_served_at, last_worker_id = excluded.last_worker_id
"""
"""A worker registered, or left the registry: it served its flows until now."""

TOUCH_WORKER = """
    UPDATE {p}workers SET last_seen_at = :now, expires_at = :now + :ttl_ms * 1000
    WHERE id = :worker_id
"""

REMOVE_WORKER = "DELETE FROM {p}workers WHERE id = :worker_id RETURNING id, flow_ids"

REMOVE_DEAD_WORKERS = "DELETE FROM {p}workers WHERE expires_at <= :now RETURNING id, flow_ids"

WORKERS = f"SELECT {_WORKER_COLUMNS} FROM {{p}}workers ORDER BY host, started_at, id"

SERVED_FLOWS = "SELECT flow_id, last_served_at FROM {p}worker_flows ORDER BY flow_id"

QUEUED_BY_FLOW = """
    SELECT flow_id, count(*) AS queued FROM {p}executions
    WHERE status = 'created' AND available_at IS NOT NULL
    GROUP BY flow_id ORDER BY flow_id
"""
