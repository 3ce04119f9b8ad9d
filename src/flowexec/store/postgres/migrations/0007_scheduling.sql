-- Scheduling: priorities, idempotency keys, per-flow running limits and cron slots.
ALTER TABLE {prefix}executions ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE {prefix}executions ADD COLUMN idempotency_key text;

-- claiming: the most urgent runnable execution first, oldest first within a priority
DROP INDEX {prefix}executions_runnable;
CREATE INDEX {prefix}executions_runnable
    ON {prefix}executions (priority, available_at, id)
    WHERE status = 'created' AND available_at IS NOT NULL;
-- one execution per (flow, key) while it exists: concurrent creates meet here
CREATE UNIQUE INDEX {prefix}executions_idempotency
    ON {prefix}executions (flow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- max_running: the claim counts a limited flow's running executions
CREATE INDEX {prefix}executions_running_flow
    ON {prefix}executions (flow_id)
    WHERE status = 'running';

-- One row per cron slot a scheduler filled: the primary key lets one execution exist per
-- (schedule, slot) whichever scheduler gets there first. No foreign key: purging the
-- execution must not forget that its slot ran.
CREATE TABLE {prefix}schedule_slots (
    schedule_id  text NOT NULL,
    slot_at      timestamptz NOT NULL,
    execution_id text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (schedule_id, slot_at)
);
