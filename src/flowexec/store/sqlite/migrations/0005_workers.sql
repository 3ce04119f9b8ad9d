-- The worker registry, as on PostgreSQL: one row per worker process, live while expires_at
-- is in the future; worker_flows remembers when a worker last served each flow (it
-- registered, or left the registry).
CREATE TABLE {prefix}workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL CHECK (pid >= 0),
    flow_ids     TEXT NOT NULL CHECK (json_valid(flow_ids)),
    concurrency  INTEGER NOT NULL CHECK (concurrency > 0),
    version      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE {prefix}worker_flows (
    flow_id            TEXT PRIMARY KEY,
    last_served_at INTEGER NOT NULL,
    last_worker_id     TEXT NOT NULL
) STRICT, WITHOUT ROWID;
