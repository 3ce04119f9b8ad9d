"""The SQLite statement behind `get_queue_stats` (store/queue_stats.py)."""

QUEUE_STATS = """
    SELECT flow_id,
           count(*) FILTER (WHERE status = 'created' AND available_at <= :now) AS queued,
           count(*) FILTER (WHERE status = 'created' AND available_at > :now) AS delayed,
           count(*) FILTER (WHERE status = 'running') AS running,
           count(*) FILTER (WHERE status = 'paused') AS paused,
           min(available_at) FILTER (WHERE status = 'created' AND available_at <= :now)
               AS oldest_queued_at,
           :now AS measured_at
    FROM (
        SELECT flow_id, status, available_at FROM {p}executions
        WHERE status = 'created' AND available_at IS NOT NULL
        UNION ALL
        SELECT flow_id, status, available_at FROM {p}executions
        WHERE status IN ('running', 'paused')
    )
    GROUP BY flow_id
    ORDER BY flow_id
"""
"""Each branch's predicate is its partial index's, so neither reads finished rows."""
