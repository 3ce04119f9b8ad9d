"""The PostgreSQL statements behind API tokens and flow counts; `{p}` is the table prefix."""

INSERT_TOKEN = """
    INSERT INTO {p}api_tokens (token_id, name, owner_id, admin, secret_hash)
    VALUES (%(token_id)s, %(name)s, %(owner_id)s, %(admin)s, %(secret_hash)s)
    ON CONFLICT DO NOTHING
    RETURNING token_id, name, owner_id, admin, created_at
"""

TOKENS = "SELECT token_id, name, owner_id, admin, created_at FROM {p}api_tokens ORDER BY name"

TOKEN = """
    SELECT token_id, name, owner_id, admin, created_at, secret_hash
    FROM {p}api_tokens WHERE token_id = %(token_id)s
"""

DELETE_TOKEN = "DELETE FROM {p}api_tokens WHERE name = %(name)s"

_FLOW_COUNTS = """
    SELECT flow_id, status, count(*) AS n FROM {{p}}executions {where}
    GROUP BY flow_id, status ORDER BY flow_id, status
"""
FLOW_COUNTS = {
    False: _FLOW_COUNTS.format(where=""),
    True: _FLOW_COUNTS.format(where="WHERE owner_id = %(owner_id)s"),
}
"""Keyed by: has an owner filter."""

FINISHED_COUNTS = """
    SELECT flow_id, count(*) AS n FROM {p}executions
    WHERE parent_execution_id IS NULL AND status IN ('completed', 'failed', 'stopped')
        AND completed_at > now() - make_interval(secs => %(within_s)s)
    GROUP BY flow_id ORDER BY flow_id
"""
"""Matches the partial index on finished roots' `completed_at`."""

RECOVERY_COUNT = """
    SELECT count(*) AS n FROM {p}execution_recovery
    WHERE recovered_at > now() - make_interval(secs => %(within_s)s)
"""
