-- API tokens for `flowexec serve`. A token is "fxt_<token_id>_<secret>": the id finds the row,
-- and only a SHA-256 hash of the secret is kept, compared in constant time by the server.
CREATE TABLE {prefix}api_tokens (
    token_id    text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    owner_id    text NOT NULL,
    admin       boolean NOT NULL DEFAULT false,
    secret_hash text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
