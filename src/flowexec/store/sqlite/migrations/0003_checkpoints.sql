-- Durable steps, as on PostgreSQL: one row per node that completed, written in the
-- transaction that logs its events, read by the primary key, removed with the execution.
CREATE TABLE {prefix}execution_checkpoints (
    execution_id TEXT NOT NULL REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    node_id      TEXT NOT NULL,
    result       TEXT NOT NULL CHECK (json_valid(result)),
    attempt      INTEGER NOT NULL CHECK (attempt > 0),
    recorded_at  INTEGER NOT NULL,
    PRIMARY KEY (execution_id, node_id)
) STRICT, WITHOUT ROWID;
