"""The LISTEN loop: NOTIFYs on the store's channels become wake-ups of its waiters.

One connection per store listens on two channels: new work (wakes `wait_for_work`) and new
events (the payload names the executions whose subscribers to wake; empty means all).

It is supervised. Whatever ends a listening session, a lost connection or an error nobody
expected, is logged, the waiters are woken (a NOTIFY may have been missed, so they look at the
queue themselves) and a new session starts after a backoff. Waiters never depend on it alone:
`wait_for_work` always returns by its timeout, the polling fallback. Closing the store ends it.

Whether LISTEN works at all on a URL is found out once, at open (`self_test`): behind a
transaction pooler a NOTIFY reaches whichever client holds the server session, not the
listener, and the store polls instead (store/postgres/pooling.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger("flowexec.store.postgres")

FIRST_RESTART_DELAY_S = 0.1
MAX_RESTART_DELAY_S = 5.0
SELF_TEST_PAYLOAD = "flowexec-self-test"


class WorkListener:
    def __init__(
        self,
        url: str,
        channel: str,
        wake: Callable[[], None],
        *,
        events_channel: str,
        on_events: Callable[[str], None],
        connect_kwargs: dict[str, Any],
    ) -> None:
        self._url = url
        self._connect_kwargs = connect_kwargs
        self._channel = channel
        self._wake = wake
        self._events_channel = events_channel
        self._on_events = on_events
        self._task: asyncio.Task[None] | None = None
        self._delay_s = FIRST_RESTART_DELAY_S

    @property
    def application_name(self) -> str:
        """How the listening session names itself to the server (`pg_stat_activity`)."""
        return f"flowexec-listener-{self._channel}"

    async def self_test(self, notify: Callable[[str], Awaitable[None]], timeout_s: float) -> bool:
        """Whether a NOTIFY sent by `notify` (through the store's pool) reaches a session
        listening on this URL within `timeout_s`, connecting included (a session pool that
        is full queues the connection); a connection failure counts as no."""
        try:
            async with asyncio.timeout(timeout_s):
                conn = await self._connect()
                async with conn:
                    listen = sql.SQL("LISTEN {}").format(sql.Identifier(self._channel))
                    await conn.execute(listen)
                    await notify(SELF_TEST_PAYLOAD)
                    async for notification in conn.notifies():
                        if notification.payload == SELF_TEST_PAYLOAD:
                            return True
        except (psycopg.Error, TimeoutError) as exc:
            log.debug("LISTEN self-test on %s: %r", self._channel, exc)
        return False

    def ensure_running(self) -> None:
        """Start the loop, or start it again if something ended it anyway."""
        if self._task is not None and self._task.done():
            failure = None if self._task.cancelled() else self._task.exception()
            log.error("listener for %s had stopped (%r); starting it again", self._channel, failure)
            self._task = None
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="flowexec-listen")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _supervise(self) -> None:
        while True:
            try:
                await self._listen()
                log.warning("listener for %s: the server ended the session", self._channel)
            except psycopg.Error as exc:
                log.warning("listener for %s lost its connection: %s", self._channel, exc)
            except Exception:
                log.exception("listener for %s failed; restarting it", self._channel)
            self._wake_all()
            await asyncio.sleep(self._delay_s)
            self._delay_s = min(self._delay_s * 2, MAX_RESTART_DELAY_S)

    async def _listen(self) -> None:
        conn = await self._connect()
        async with conn:
            for channel in (self._channel, self._events_channel):
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._delay_s = FIRST_RESTART_DELAY_S
            self._wake_all()  # anything sent while we were away
            async for notification in conn.notifies():
                if notification.channel == self._events_channel:
                    self._on_events(notification.payload)
                else:
                    self._wake()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._url, **self._connect_kwargs, application_name=self.application_name
        )

    def _wake_all(self) -> None:
        self._wake()
        self._on_events("")
