-- Executions, their claims (one lease per execution, fenced by epoch) and recovery history.
CREATE TABLE {prefix}executions (
    id                    text PRIMARY KEY,
    flow_id               text NOT NULL,
    owner_id              text NOT NULL,
    root_execution_id     text NOT NULL,
    parent_execution_id   text REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    status                text NOT NULL CHECK (status IN
                              ('created', 'running', 'paused', 'completed', 'failed', 'stopped')),
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    started_at            timestamptz,
    completed_at          timestamptz,
    error_message         text,
    error_node_id         text,
    execution_depth       integer NOT NULL DEFAULT 0 CHECK (execution_depth >= 0),
    options               jsonb,
    integration           jsonb,
    external_events       jsonb,
    result                jsonb,
    failure_count         integer NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    last_failure_reason   text,
    last_failure_at       timestamptz,
    processing_started_at timestamptz,
    processing_worker_id  text,
    -- not runnable before this; NULL while created but not started
    available_at          timestamptz,
    -- the epoch of the claim that set processing_worker_id: fenced writes check it on this row
    claim_epoch           bigint NOT NULL DEFAULT 0
);

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
-- tree aggregates (index-only) and tree reads
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
    execution_id text PRIMARY KEY REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    worker_id    text NOT NULL,
    claimed_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('active', 'released', 'expired')),
    epoch        bigint NOT NULL CHECK (epoch >= 1)
);
CREATE INDEX {prefix}execution_claims_status_expires
    ON {prefix}execution_claims (status, expires_at);

CREATE TABLE {prefix}execution_recovery (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id        text NOT NULL REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    recovered_at        timestamptz NOT NULL,
    recovered_by_worker text NOT NULL,
    recovery_reason     text NOT NULL,
    previous_status     text,
    previous_worker_id  text
);
CREATE INDEX {prefix}execution_recovery_execution
    ON {prefix}execution_recovery (execution_id, recovered_at);
CREATE INDEX {prefix}execution_recovery_recent
    ON {prefix}execution_recovery (recovered_at);
