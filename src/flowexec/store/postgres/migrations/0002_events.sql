-- The event log: per execution, events indexed 0, 1, 2, ... without gaps. The appending
-- statement takes the next indexes from event_count on the execution row, whose row lock
-- serialises appenders. The primary key serves every read (execution_id, idx >= k, by idx).
ALTER TABLE {prefix}executions ADD COLUMN event_count integer NOT NULL DEFAULT 0;

CREATE TABLE {prefix}execution_events (
    execution_id text NOT NULL REFERENCES {prefix}executions (id) ON DELETE CASCADE,
    idx          integer NOT NULL CHECK (idx >= 0),
    type         text NOT NULL,
    at           timestamptz NOT NULL,
    attempt      bigint NOT NULL CHECK (attempt >= 0),
    data         jsonb NOT NULL,
    PRIMARY KEY (execution_id, idx)
);

-- Who follows which execution's events, so that only statements logging events someone
-- follows send a NOTIFY (a database-wide lock at commit). A row lapses at expires_at;
-- subscribers renew theirs while they wait.
CREATE TABLE {prefix}event_subscribers (
    execution_id text NOT NULL,
    subscriber   text NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (execution_id, subscriber)
);
