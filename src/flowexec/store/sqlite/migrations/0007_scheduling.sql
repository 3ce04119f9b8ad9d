-- Scheduling, as on PostgreSQL: priorities, idempotency keys, per-flow running limits and
-- cron slots.
ALTER TABLE {prefix}executions ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE {prefix}executions ADD COLUMN idempotency_key TEXT;

DROP INDEX {prefix}executions_runnable;
CREATE INDEX {prefix}executions_runnable
    ON {prefix}executions (priority, available_at, id)
    WHERE status = 'created' AND available_at IS NOT NULL;
CREATE UNIQUE INDEX {prefix}executions_idempotency
    ON {prefix}executions (flow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX {prefix}executions_running_flow
    ON {prefix}executions (flow_id)
    WHERE status = 'running';

CREATE TABLE {prefix}schedule_slots (
    schedule_id  TEXT NOT NULL,
    slot_at      INTEGER NOT NULL,
    execution_id TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, slot_at)
) STRICT, WITHOUT ROWID;
