"""Server-Sent Events for one execution's log, and the cap on concurrent streams per token.

Each event goes out with its index as the SSE `id`, so a browser's `EventSource` reconnects with
`Last-Event-ID` and the stream resumes at the next index: every event exactly once, in order
(the store's `follow_events` guarantees it from any index). After the terminal event comes an
`end` event and the stream closes; a reconnect after the end gets 204, which tells an
`EventSource` to stop. A comment line every `keepalive_s` keeps proxies from closing an idle
stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from flowexec.api.problems import ApiProblem, error_problem
from flowexec.api.schemas import EventOut
from flowexec.errors import FlowexecError
from flowexec.model import ExecutionEvent

log = logging.getLogger("flowexec.api")

SSE_MEDIA_TYPE = "text/event-stream"
KEEPALIVE = b": keep-alive\n\n"
END = b"event: end\ndata: {}\n\n"


class StreamSlots:
    """How many streams each token has open; one over the cap is refused with 429."""

    def __init__(self, per_token: int) -> None:
        self._per_token = per_token
        self._open: dict[str, int] = {}

    def take(self, key: str) -> None:
        held = self._open.get(key, 0)
        if held >= self._per_token:
            raise ApiProblem(
                429, "too-many-streams",
                f"this token has {held} event streams open, the most it may; close one first",
            )
        self._open[key] = held + 1

    def give_back(self, key: str) -> None:
        left = self._open[key] - 1
        if left:
            self._open[key] = left
        else:
            del self._open[key]


def sse_event(event: ExecutionEvent) -> bytes:
    data = EventOut.of(event).model_dump_json()
    return f"id: {event.index}\ndata: {data}\n\n".encode()


def _sse_error(exc: FlowexecError) -> bytes:
    status, kind = error_problem(exc)
    body: dict[str, Any] = {"type": kind, "status": status, "detail": str(exc)}
    return f"event: error\ndata: {json.dumps(body)}\n\n".encode()


async def sse_stream(
    events: AsyncIterator[ExecutionEvent],
    *,
    keepalive_s: float,
    slots: StreamSlots,
    key: str,
) -> AsyncIterator[bytes]:
    """The stream's bytes; gives its slot back however it ends (the end, an error, or the
    client leaving, which cancels it)."""
    pending: asyncio.Future[ExecutionEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=keepalive_s)
            if not done:
                yield KEEPALIVE
                continue
            ready, pending = pending, None
            try:
                event = ready.result()
            except StopAsyncIteration:
                break
            yield sse_event(event)
        yield END
    except FlowexecError as exc:
        log.warning("an event stream ended early: %s", exc)
        yield _sse_error(exc)
    finally:
        slots.give_back(key)
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
