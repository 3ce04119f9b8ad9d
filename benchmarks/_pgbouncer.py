"""`--pgbouncer`: the drain and the latency again, through a real PgBouncer in transaction
mode in front of the bench database (the one the tests start, tests/pgbouncer.py)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.pgbouncer import HOW_TO_GET, SERVER_CONNECTIONS, PgBouncer, pgbouncer_program

from flowexec.store.urls import SESSION_URL_ENV

POOLED_WORKLOADS = ("drain", "latency")


@contextmanager
def pgbouncer_in_front_of(url: str) -> Iterator[PgBouncer]:
    if pgbouncer_program() is None:
        raise RuntimeError(f"--pgbouncer: {HOW_TO_GET}")
    with tempfile.TemporaryDirectory(prefix="flowexec-bench-pgbouncer-") as workdir:
        bouncer = PgBouncer(url, Path(workdir))
        bouncer.start()
        try:
            yield bouncer
        finally:
            bouncer.stop()


def pooled_routes(bouncer: PgBouncer) -> list[tuple[str, str | None]]:
    """(the title's note, the session URL or None) of each pooled run."""
    pool = f"transaction pooling, {SERVER_CONNECTIONS} server connections"
    return [
        (f" through PgBouncer ({pool}; LISTEN on its session alias)", bouncer.session_url),
        (f" through PgBouncer ({pool}; no session URL: the store polls)", None),
    ]


@contextmanager
def session_url_env(session_url: str | None) -> Iterator[None]:
    """Every store the workloads open (the Workers' too) reads its session URL from here."""
    before = os.environ.pop(SESSION_URL_ENV, None)
    if session_url is not None:
        os.environ[SESSION_URL_ENV] = session_url
    try:
        yield
    finally:
        os.environ.pop(SESSION_URL_ENV, None)
        if before is not None:
            os.environ[SESSION_URL_ENV] = before
