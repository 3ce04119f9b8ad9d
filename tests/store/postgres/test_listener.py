"""The LISTEN loop is supervised: whatever ends it, it starts again and NOTIFYs wake waiters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import psycopg
import pytest

from flowexec import new_execution
from flowexec.store.postgres import PostgresExecutionStore
from flowexec.store.protocol import ExecutionStore

StoreFactory = Callable[..., Awaitable[ExecutionStore]]
WAKE_WITHIN_S = 5.0


def _listener_pids(url: str, application_name: str) -> set[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND query LIKE 'LISTEN%%'",
            [application_name],
        ).fetchall()
    return {int(row[0]) for row in rows}


async def _listener_pid(url: str, application_name: str, *, not_pid: int | None = None) -> int:
    """The server pid of a session that is listening, once there is one (not `not_pid`)."""
    deadline = time.monotonic() + WAKE_WITHIN_S
    while time.monotonic() < deadline:
        pids = _listener_pids(url, application_name) - {not_pid}
        if pids:
            return pids.pop()
        await asyncio.sleep(0.05)
    raise AssertionError(f"no listening session named {application_name!r}")


async def _assert_woken_by(waiter: ExecutionStore, writer: ExecutionStore) -> None:
    """A waiter wakes for work another store (so only a NOTIFY can tell it) queued."""
    await asyncio.sleep(0.3)  # a new session wakes waiters once, just after its LISTEN
    await waiter.wait_for_work(0.01)  # forget that wake-up
    waiting = asyncio.create_task(waiter.wait_for_work(60))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await writer.create(new_execution("flow", "owner"))
    await asyncio.wait_for(waiting, WAKE_WITHIN_S)


def _logged(caplog: pytest.LogCaptureFixture, failures: list[Exception]) -> bool:
    return bool(failures) and any(
        r.exc_info is not None and r.exc_info[1] is failures[0] for r in caplog.records
    )


async def _pair(store_factory: StoreFactory) -> tuple[PostgresExecutionStore, ExecutionStore]:
    waiter = await store_factory()
    assert isinstance(waiter, PostgresExecutionStore)
    return waiter, await store_factory()


async def test_wake_ups_resume_after_the_server_ends_the_listening_session(
    store_factory: StoreFactory, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    waiter, writer = await _pair(store_factory)
    await waiter.wait_for_work(0.01)
    name = waiter._listener.application_name
    first = await _listener_pid(postgres_url, name)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [first])
    with caplog.at_level(logging.WARNING, logger="flowexec.store.postgres"):
        await _listener_pid(postgres_url, name, not_pid=first)
    assert any("listener" in r.getMessage() for r in caplog.records)
    await _assert_woken_by(waiter, writer)


async def test_wake_ups_resume_after_an_unexpected_error_in_the_listener(
    store_factory: StoreFactory, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    waiter, writer = await _pair(store_factory)
    listener = waiter._listener
    wake = listener._wake
    failures: list[Exception] = []

    def wake_that_fails_once() -> None:
        if not failures:
            failures.append(RuntimeError("a bug in the wake-up"))
            raise failures[0]
        wake()

    listener._wake = wake_that_fails_once
    with caplog.at_level(logging.ERROR, logger="flowexec.store.postgres"):
        await waiter.wait_for_work(0.01)  # starts the listener, whose first wake-up fails
        deadline = time.monotonic() + WAKE_WITHIN_S
        while not _logged(caplog, failures) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    assert _logged(caplog, failures)
    await asyncio.sleep(0.3)  # the first session is gone; the next one starts after a pause
    await _listener_pid(postgres_url, listener.application_name)
    await _assert_woken_by(waiter, writer)


async def test_closing_the_store_ends_the_listener(
    store_factory: StoreFactory, postgres_url: str
) -> None:
    waiter, _ = await _pair(store_factory)
    await waiter.wait_for_work(0.01)
    name = waiter._listener.application_name
    await _listener_pid(postgres_url, name)
    task = waiter._listener._task
    await waiter.close()
    assert task is not None and task.done()
    deadline = time.monotonic() + WAKE_WITHIN_S
    while _listener_pids(postgres_url, name) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not _listener_pids(postgres_url, name)
