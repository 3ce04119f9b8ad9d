-- One write per transition, as on PostgreSQL: the lease lives on the execution row (its epoch
-- is claim_epoch) instead of a row of its own in execution_claims. Live claims move over in
-- this transaction, so no lease is lost or changed.
ALTER TABLE {prefix}executions ADD COLUMN lease_worker_id TEXT;
ALTER TABLE {prefix}executions ADD COLUMN lease_status TEXT
    CHECK (lease_status IN ('active', 'released', 'expired'));
ALTER TABLE {prefix}executions ADD COLUMN lease_claimed_at INTEGER;
ALTER TABLE {prefix}executions ADD COLUMN lease_expires_at INTEGER;
ALTER TABLE {prefix}executions ADD COLUMN lease_heartbeat_at INTEGER;

UPDATE {prefix}executions AS e SET
    lease_worker_id = c.worker_id, lease_status = c.status, lease_claimed_at = c.claimed_at,
    lease_expires_at = c.expires_at, lease_heartbeat_at = c.heartbeat_at, claim_epoch = c.epoch
FROM {prefix}execution_claims AS c WHERE c.execution_id = e.id;

DROP TABLE {prefix}execution_claims;

-- The live leases (listing, expiry).
CREATE INDEX {prefix}executions_leased
    ON {prefix}executions (lease_claimed_at, id)
    WHERE lease_status = 'active';
