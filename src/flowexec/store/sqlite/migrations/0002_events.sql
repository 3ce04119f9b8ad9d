-- The event log, as on PostgreSQL: gapless indexes taken from event_count on the execution
-- row inside the writing transaction; the primary key serves every read.
ALTER TABLE {prefix}executions ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0;

CREATE TABLE {prefix}execution_events (
    execution_id TEXT NOT NULL REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL CHECK (idx >= 0),
    type         TEXT NOT NULL,
    at           INTEGER NOT NULL,
    attempt      INTEGER NOT NULL CHECK (attempt >= 0),
    data         TEXT NOT NULL CHECK (json_valid(data)),
    PRIMARY KEY (execution_id, idx)
) STRICT, WITHOUT ROWID;
