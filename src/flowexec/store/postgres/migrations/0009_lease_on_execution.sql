-- One write per transition: the lease lives on the execution row (who holds it, when it was
-- taken, when it ends, the last heartbeat, active/released/expired; its epoch is claim_epoch)
-- instead of a row of its own in execution_claims. Live claims move over in this transaction,
-- under the lock ALTER TABLE takes, so no lease is lost or changed.
ALTER TABLE {prefix}executions
    ADD COLUMN lease_worker_id    text,
    ADD COLUMN lease_status       text CHECK (lease_status IN ('active', 'released', 'expired')),
    ADD COLUMN lease_claimed_at   timestamptz,
    ADD COLUMN lease_expires_at   timestamptz,
    ADD COLUMN lease_heartbeat_at timestamptz;

UPDATE {prefix}executions e SET
    lease_worker_id = c.worker_id, lease_status = c.status, lease_claimed_at = c.claimed_at,
    lease_expires_at = c.expires_at, lease_heartbeat_at = c.heartbeat_at, claim_epoch = c.epoch
FROM {prefix}execution_claims c WHERE c.execution_id = e.id;

DROP TABLE {prefix}execution_claims;

-- Heartbeats write lease_expires_at and lease_heartbeat_at only, columns no index names, so
-- they are HOT updates when the page has room: leave a fifth of each new page free for them.
ALTER TABLE {prefix}executions SET (fillfactor = 80);

-- The live leases (listing, expiry): small, and its predicate column changes only when a
-- claim is taken or ends, never on a heartbeat.
CREATE INDEX {prefix}executions_leased
    ON {prefix}executions (lease_claimed_at, id)
    WHERE lease_status = 'active';
