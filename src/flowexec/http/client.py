"""`HttpClient`: the database `Client`'s commands over the HTTP API, for processes that may
not reach the database. Same method names, arguments, return types and typed errors; the owner
of what it creates is the token's unless an admin token names another.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from flowexec.api.settings import API_PREFIX
from flowexec.errors import (
    ExecutionTimeout,
    StoreUnavailable,
    ValidationError,
)
from flowexec.http.decode import (
    error_from_problem,
    event_from_json,
    execution_from_json,
    tree_node_from_json,
)
from flowexec.model import (
    JSON,
    Execution,
    ExecutionEvent,
    ExecutionOptions,
    ExecutionTreeNode,
    check_positive,
)
from flowexec.runtime.events import FlowEvent

WAIT_FIRST_POLL_S = 0.05
WAIT_POLL_GROWTH = 1.5
MAX_POLL_INTERVAL_S = 1.0
STREAM_RECONNECTS = 5
"""How many broken event streams in a row `events` resumes before it gives up."""


class HttpClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`base_url`: where `flowexec serve` listens, e.g. http://127.0.0.1:8080."""
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + API_PREFIX,
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(self, method: str, path: str, body: object = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = await self._http.request(method, path, json=body, params=query)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"cannot reach the flowexec API: {exc}") from exc
        if response.is_error:
            raise error_from_problem(response.status_code, _json_or_none(response))
        return response.json()

    # ------------------------------------------------------------ creating

    async def create(
        self,
        flow_id: str,
        *,
        owner_id: str | None = None,
        options: ExecutionOptions | Mapping[str, Any] | None = None,
        integration: Mapping[str, JSON] | None = None,
        events: Sequence[FlowEvent | Mapping[str, Any]] | None = None,
        start: bool = True,
    ) -> str:
        body = {
            "flow_id": flow_id,
            "owner_id": owner_id,
            "options": options,
            "integration": integration,
            "events": events,
            "start": start,
        }
        created = await self._call("POST", "/executions", _checked_json(body))
        return str(created["id"])

    async def create_many(
        self, flow_id: str, items: Sequence[Mapping[str, Any]], *, start: bool = True
    ) -> list[str]:
        body = {"flow_id": flow_id, "items": items, "start": start}
        created = await self._call("POST", "/executions/batch", _checked_json(body))
        return [str(i) for i in created["ids"]]

    async def start(self, execution_id: str) -> bool:
        return bool((await self._call("POST", _path(execution_id, "start")))["started"])

    # ------------------------------------------------------------ lifecycle

    async def stop(self, execution_id: str, reason: str | None = None) -> None:
        await self._call("POST", _path(execution_id, "stop"), {"reason": reason})

    async def pause(self, execution_id: str, reason: str | None = None) -> None:
        await self._call("POST", _path(execution_id, "pause"), {"reason": reason})

    async def resume(self, execution_id: str) -> None:
        await self._call("POST", _path(execution_id, "resume"))

    async def retry(self, execution_id: str, reason: str | None = None) -> None:
        await self._call("POST", _path(execution_id, "retry"), {"reason": reason})

    # ------------------------------------------------------------ reading

    async def get(self, execution_id: str) -> Execution:
        return execution_from_json(await self._call("GET", _path(execution_id)))

    async def tree(
        self, execution_id: str, *, max_nodes: int | None = None
    ) -> list[ExecutionTreeNode]:
        tree = await self._call("GET", _path(execution_id, "tree"), max_nodes=max_nodes)
        return [tree_node_from_json(n) for n in tree["nodes"]]

    async def wait(
        self,
        execution_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the database Client's signature
    ) -> Execution:
        """The execution once it is terminal; `ExecutionTimeout` after `timeout` s."""
        if timeout is not None:
            check_positive(timeout, "timeout", allow_zero=True)
        loop = asyncio.get_running_loop()
        ends_at = None if timeout is None else loop.time() + timeout
        pause = WAIT_FIRST_POLL_S
        while True:
            execution = await self.get(execution_id)
            if execution.status.is_terminal:
                return execution
            if ends_at is not None:
                left = ends_at - loop.time()
                if left <= 0:
                    assert timeout is not None
                    raise ExecutionTimeout(execution_id, execution.status, timeout)
                pause = min(pause, left)
            await asyncio.sleep(pause)
            pause = min(pause * WAIT_POLL_GROWTH, MAX_POLL_INTERVAL_S)

    async def result(self, execution_id: str) -> JSON:
        return (await self.get(execution_id)).completed_result()

    async def events(
        self,
        execution_id: str,
        from_index: int = 0,
        types: Sequence[str] | None = None,
        follow: bool = True,
    ) -> AsyncIterator[ExecutionEvent]:
        """The execution's events from `from_index`, each once and in order; with `follow`,
        live over Server-Sent Events until the execution has ended, resuming after a broken
        connection from the last index received."""
        wanted = None if types is None else list(types)
        if not follow:
            async for event in self._event_pages(execution_id, from_index, wanted):
                yield event
            return
        next_index = from_index
        failures = 0
        while True:
            try:
                async for event in self._event_stream(execution_id, next_index, wanted):
                    yield event
                    next_index = event.index + 1
                    failures = 0
                return
            except (httpx.TransportError, StreamBroken) as exc:
                failures += 1
                if failures > STREAM_RECONNECTS:
                    raise StoreUnavailable(f"the event stream keeps breaking: {exc}") from exc
                await asyncio.sleep(min(0.1 * 2**failures, 2.0))

    async def _event_pages(
        self, execution_id: str, from_index: int, types: list[str] | None
    ) -> AsyncIterator[ExecutionEvent]:
        next_index = from_index
        while True:
            page = await self._call(
                "GET", _path(execution_id, "events"), from_index=next_index, types=types
            )
            for item in page["items"]:
                yield event_from_json(item)
            if not page["items"]:
                return
            next_index = page["next_index"]

    async def _event_stream(
        self, execution_id: str, from_index: int, types: list[str] | None
    ) -> AsyncIterator[ExecutionEvent]:
        params: dict[str, Any] = {"from_index": from_index}
        if types is not None:
            params["types"] = types
        headers = {"Accept": "text/event-stream"}
        async with self._http.stream(
            "GET", _path(execution_id, "events"), params=params, headers=headers,
            timeout=httpx.Timeout(self._http.timeout.connect, read=None),
        ) as response:
            if response.status_code == 204:
                return
            if response.is_error:
                await response.aread()
                raise error_from_problem(response.status_code, _json_or_none(response))
            async for name, data in _sse_messages(response):
                if name == "end":
                    return
                if name == "error":
                    problem = json.loads(data)
                    raise error_from_problem(int(problem.get("status", 503)), problem)
                yield event_from_json(json.loads(data))
        raise StreamBroken("the server closed the event stream before its end")


class StreamBroken(Exception):
    """An event stream closed before its `end` event; `events` resumes it."""


async def _sse_messages(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) of each message; comments (keep-alives) are skipped."""
    name, data = "message", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


def _path(execution_id: str, action: str | None = None) -> str:
    if not isinstance(execution_id, str) or not execution_id:
        raise ValidationError("execution_id must be a non-empty string")
    quoted = quote(execution_id, safe="")
    return f"/executions/{quoted}" + ("" if action is None else f"/{action}")


def _model_json(value: object) -> object:
    """The model objects `Client` takes (options, events) in their JSON shape."""
    if isinstance(value, ExecutionOptions | FlowEvent):
        return value.to_json()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _checked_json(body: object) -> object:
    """The body as JSON values; what JSON cannot carry is refused before sending, as the
    database Client would refuse it."""
    try:
        return json.loads(json.dumps(body, allow_nan=False, default=_model_json))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"the request cannot be sent as JSON: {exc}") from None


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None
