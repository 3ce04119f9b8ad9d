-- Executions, their claims (one lease per execution, fenced by epoch) and recovery history.
-- The same tables and indexes as the PostgreSQL backend. Timestamps are INTEGER microseconds
-- since the Unix epoch (UTC), JSON is TEXT, STRICT tables enforce both.
CREATE TABLE {prefix}executions (
    id                    TEXT PRIMARY KEY NOT NULL,
    flow_id               TEXT NOT NULL,
    owner_id              TEXT NOT NULL,
    root_execution_id     TEXT NOT NULL,
    parent_execution_id   TEXT REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    status                TEXT NOT NULL CHECK (status IN
                              ('created', 'running', 'paused', 'completed', 'failed', 'stopped')),
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    started_at            INTEGER,
    completed_at          INTEGER,
    error_message         TEXT,
    error_node_id         TEXT,
    execution_depth       INTEGER NOT NULL DEFAULT 0 CHECK (execution_depth >= 0),
    options               TEXT CHECK (options IS NULL OR json_valid(options)),
    integration           TEXT CHECK (integration IS NULL OR json_valid(integration)),
    external_events       TEXT CHECK (external_events IS NULL OR json_valid(external_events)),
    result                TEXT CHECK (result IS NULL OR json_valid(result)),
    failure_count         INTEGER NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    last_failure_reason   TEXT,
    last_failure_at       INTEGER,
    processing_started_at INTEGER,
    processing_worker_id  TEXT,
    -- not runnable before this; NULL while created but not started
    available_at          INTEGER,
    -- the epoch of the claim that set processing_worker_id: fenced writes check it on this row
    claim_epoch           INTEGER NOT NULL DEFAULT 0 CHECK (claim_epoch >= 0)
) STRICT;

-- claim_next: runnable executions, oldest available_at first
CREATE INDEX {prefix}executions_runnable
    ON {prefix}executions (available_at, id)
    WHERE status = 'created' AND available_at IS NOT NULL;
-- recovery: only what a worker may hold
CREATE INDEX {prefix}executions_recoverable
    ON {prefix}executions (updated_at, id)
    WHERE status IN ('running', 'paused');
-- root listing, keyset on (created_at, id)
CREATE INDEX {prefix}executions_roots
    ON {prefix}executions (flow_id, created_at, id)
    WHERE parent_execution_id IS NULL;
-- tree aggregates (covering) and tree reads
CREATE INDEX {prefix}executions_tree
    ON {prefix}executions (root_execution_id, execution_depth);
CREATE INDEX {prefix}executions_parent
    ON {prefix}executions (parent_execution_id)
    WHERE parent_execution_id IS NOT NULL;
-- retention: finished roots by age
CREATE INDEX {prefix}executions_finished_roots
    ON {prefix}executions (completed_at)
    WHERE parent_execution_id IS NULL AND status IN ('completed', 'failed', 'stopped');

CREATE TABLE {prefix}execution_claims (
    execution_id TEXT PRIMARY KEY NOT NULL
                     REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    worker_id    TEXT NOT NULL,
    claimed_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'released', 'expired')),
    epoch        INTEGER NOT NULL CHECK (epoch >= 1)
) STRICT;
CREATE INDEX {prefix}execution_claims_status_expires
    ON {prefix}execution_claims (status, expires_at);

-- AUTOINCREMENT: ids are never reused, like an identity column
CREATE TABLE {prefix}execution_recovery (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id        TEXT NOT NULL REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    recovered_at        INTEGER NOT NULL,
    recovered_by_worker TEXT NOT NULL,
    recovery_reason     TEXT NOT NULL,
    previous_status     TEXT,
    previous_worker_id  TEXT
) STRICT;
CREATE INDEX {prefix}execution_recovery_execution
    ON {prefix}execution_recovery (execution_id, recovered_at);
CREATE INDEX {prefix}execution_recovery_recent
    ON {prefix}execution_recovery (recovered_at);
