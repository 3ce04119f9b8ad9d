"""A heartbeat writes only columns no index of the executions table names (key, expression or
predicate), so PostgreSQL may update the row in place: a HOT update, no new index entries.
Whether it does also depends on free room in the page, which pruning makes once no snapshot
still needs the old row versions; `benchmarks/drain.py` reports the share it measured."""

from __future__ import annotations

import re

import psycopg

from flowexec.store.postgres import queries as Q
from flowexec.store.protocol import ExecutionStore


def _written_columns(statement: str) -> set[str]:
    assignments = re.search(r"\bSET\b(.*?)\bFROM\b", statement, re.S)
    assert assignments is not None
    return set(re.findall(r"^\s*(\w+)\s*=", assignments.group(1), re.M))


async def test_heartbeats_write_no_indexed_column(store: ExecutionStore, postgres_url: str) -> None:
    written = _written_columns(Q.EXTEND)
    assert written == {"lease_expires_at", "lease_heartbeat_at"}
    with psycopg.connect(postgres_url) as conn:
        definitions = [
            str(r[0]) for r in conn.execute(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index"
                " WHERE indrelid = %s::regclass",
                (f"{store.table_prefix}executions",),
            ).fetchall()
        ]
    assert len(definitions) > 5
    for definition in definitions:
        assert not written & set(re.findall(r"\w+", definition)), definition
