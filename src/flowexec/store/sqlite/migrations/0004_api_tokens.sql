-- API tokens for `flowexec serve`, as on PostgreSQL: only a SHA-256 hash of each secret.
CREATE TABLE {prefix}api_tokens (
    token_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    owner_id    TEXT NOT NULL,
    admin       INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    secret_hash TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
