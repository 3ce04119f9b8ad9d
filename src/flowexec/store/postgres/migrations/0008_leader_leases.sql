-- Leaders (recovery, scheduling) hold a lease row instead of a session advisory lock, which a
-- transaction pooler cannot keep: renewed by its holder, taken over only after `expires_at`
-- (the database clock) with a higher `term`, and every write made as leader checks the term.
CREATE TABLE {prefix}leader_leases (
    lock_id     bigint PRIMARY KEY,
    holder      text NOT NULL,
    term        bigint NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
