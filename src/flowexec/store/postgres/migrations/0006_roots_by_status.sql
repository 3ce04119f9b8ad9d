-- `flowexec ls --status`: root executions in one status across flows, newest first, keyset on
-- (created_at, id), e.g. every failed root whatever its flow.
CREATE INDEX {prefix}executions_roots_by_status
    ON {prefix}executions (status, created_at, id)
    WHERE parent_execution_id IS NULL;
