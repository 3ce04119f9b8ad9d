"""What sits between the store and PostgreSQL, and what the store may do through it.

`pooler="auto"` asks the connection itself: psycopg learns a backend pid at connect (the
server's BackendKeyData), and a pooler such as PgBouncer, which hands the client's session to
whichever server connection is free, makes up its own. So a pid that differs from the
server's `pg_backend_pid()` means a pooler is in between, and the store treats it as a
transaction pooler, the strictest kind: no server-side prepared statements, and no LISTEN on
that URL (docs/scaling.md). A pooler that passes the server's pid through is not seen: name
it with `pooler="transaction"`.
"""

from __future__ import annotations

from flowexec.store.postgres.connecting import Connection
from flowexec.store.postgres.options import PostgresOptions


async def behind_pooler(conn: Connection) -> bool:
    """True if the backend pid of the connection is not the server's own."""
    cur = await conn.execute("SELECT pg_backend_pid() AS pid")
    row = await cur.fetchone()
    return row is not None and int(row["pid"]) != conn.info.backend_pid


async def transaction_pooled(options: PostgresOptions, probe: Connection) -> bool:
    """Whether the store's URL goes through a transaction pooler, given the option."""
    if options.pooler == "auto":
        return await behind_pooler(probe)
    return options.pooler == "transaction"
