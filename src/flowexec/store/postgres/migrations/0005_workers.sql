-- The worker registry: one row per worker process, live while expires_at (pushed on by its
-- heartbeat) is in the future; removed by a graceful stop or, once expired, by the recovery
-- sweep. worker_flows remembers when a worker last served each flow (it registered, or left
-- the registry), so that a flow served recently is told apart from a flow nobody ever ran.
CREATE TABLE {prefix}workers (
    id           text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL CHECK (pid >= 0),
    flow_ids     jsonb NOT NULL,
    concurrency  integer NOT NULL CHECK (concurrency > 0),
    version      text NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

CREATE TABLE {prefix}worker_flows (
    flow_id            text PRIMARY KEY,
    last_served_at timestamptz NOT NULL,
    last_worker_id     text NOT NULL
);
