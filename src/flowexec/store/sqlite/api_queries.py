"""The SQLite statements behind API tokens and flow counts; `{p}` is the table prefix."""

INSERT_TOKEN = """
    INSERT INTO {p}api_tokens (token_id, name, owner_id, admin, secret_hash, created_at)
    VALUES (:token_id, :name, :owner_id, :admin, :secret_hash, :now)
    ON CONFLICT DO NOTHING
    RETURNING token_id, name, owner_id, admin, created_at
"""

TOKENS = "SELECT token_id, name, owner_id, admin, created_at FROM {p}api_tokens ORDER BY name"

TOKEN = """
    SELECT token_id, name, owner_id, admin, created_at, secret_hash
    FROM {p}api_tokens WHERE token_id = :token_id
"""

DELETE_TOKEN = "DELETE FROM {p}api_tokens WHERE name = :name"

_FLOW_COUNTS = """
    SELECT flow_id, status, count(*) AS n FROM {{p}}executions {where}
    GROUP BY flow_id, status ORDER BY flow_id, status
"""
FLOW_COUNTS = {
    False: _FLOW_COUNTS.format(where=""),
    True: _FLOW_COUNTS.format(where="WHERE owner_id = :owner_id"),
}
"""Keyed by: has an owner filter."""

FINISHED_COUNTS = """
    SELECT flow_id, count(*) AS n FROM {p}executions
    WHERE parent_execution_id IS NULL AND status IN ('completed', 'failed', 'stopped')
        AND completed_at > :now - :within_s * 1000000
    GROUP BY flow_id ORDER BY flow_id
"""
"""Matches the partial index on finished roots' `completed_at`."""

RECOVERY_COUNT = """
    SELECT count(*) AS n FROM {p}execution_recovery
    WHERE recovered_at > :now - :within_s * 1000000
"""
