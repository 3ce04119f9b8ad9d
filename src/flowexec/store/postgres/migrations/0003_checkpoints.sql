-- Durable steps: the result of each node that completed, recorded by the run (fenced by its
-- claim) in the statement that logs the node's events. A later attempt reads them all at
-- once by the primary key; deleting or purging the execution removes them (cascade).
CREATE TABLE {prefix}execution_checkpoints (
    execution_id text NOT NULL REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    node_id      text NOT NULL,
    result       jsonb NOT NULL,
    attempt      bigint NOT NULL CHECK (attempt > 0),
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (execution_id, node_id)
);
