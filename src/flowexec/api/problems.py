"""Every error as `application/problem+json` (RFC 9457), with a detail that says what was wrong.

flowexec's typed errors map to a status here, once. Nothing of a request's body and no traceback
goes into a response: FastAPI's validation errors keep only where and what, and an error no one
expected is logged on the server and answered with a plain 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowexec.errors import (
    ClaimLost,
    ConfigError,
    ExecutionExists,
    ExecutionNotCompleted,
    ExecutionNotFound,
    FlowexecError,
    FlowNotFound,
    InvalidTransition,
    StoreUnavailable,
    ValidationError,
)
from flowexec.http.decode import PROBLEM_TYPE_BASE
from flowexec.runtime.client import InvalidItem

log = logging.getLogger("flowexec.api")

PROBLEM_JSON = "application/problem+json"

ERROR_STATUS: list[tuple[type[FlowexecError], int, str]] = [
    (ExecutionNotFound, 404, "execution-not-found"),
    (FlowNotFound, 404, "flow-not-found"),
    (ValidationError, 400, "invalid-input"),
    (InvalidTransition, 409, "invalid-transition"),
    (ExecutionExists, 409, "execution-exists"),
    (ExecutionNotCompleted, 409, "execution-not-completed"),
    (ClaimLost, 409, "claim-lost"),
    (StoreUnavailable, 503, "store-unavailable"),
    (ConfigError, 500, "server-misconfigured"),
]
"""Each typed error's HTTP status and problem type, most specific first."""


class ApiProblem(Exception):
    """An error the API itself raises (401, 403, 413, 429, ...), answered as problem+json."""

    def __init__(
        self, status: int, kind: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers


def problem(
    status: int,
    kind: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A problem response; `fields` are extension members a client rebuilds its error from."""
    body = {
        **(fields or {}),
        "type": PROBLEM_TYPE_BASE + kind,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def error_problem(exc: FlowexecError) -> tuple[int, str]:
    for error_type, status, kind in ERROR_STATUS:
        if isinstance(exc, error_type):
            return status, kind
    return 500, "internal-error"


def error_fields(exc: FlowexecError) -> dict[str, Any]:
    """What an error names besides its message, so `HttpClient` raises the same error."""
    if isinstance(exc, InvalidTransition):
        return {
            "execution_id": exc.execution_id,
            "current": exc.current.value,
            "target": exc.target.value,
        }
    if isinstance(exc, ExecutionExists):
        return {"execution_id": exc.execution_id, "differences": exc.differences}
    if isinstance(exc, ExecutionNotFound):
        return {"execution_id": exc.execution_id}
    if isinstance(exc, FlowNotFound):
        return {"flow_id": exc.flow_id}
    if isinstance(exc, InvalidItem):
        return {"index": exc.index, "reason": exc.reason}
    return {}


def _http_kind(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")


def _validation_detail(exc: RequestValidationError) -> str:
    """Where and what, without the offending values."""
    parts = []
    for error in exc.errors()[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request does not match the API's schema"


def install_problem_handlers(app: FastAPI) -> None:
    async def on_flowexec_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FlowexecError)
        status, kind = error_problem(exc)
        if status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return problem(status, kind, str(exc), fields=error_fields(exc))

    async def on_api_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        return problem(exc.status, exc.kind, exc.detail, exc.headers)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such resource: {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem(exc.status_code, _http_kind(exc.status_code), detail, exc.headers)

    async def on_invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem(422, "invalid-request", _validation_detail(exc))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed unexpectedly", request.method, request.url.path)
        return problem(500, "internal-error", "the server failed; its log says why")

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        FlowexecError: on_flowexec_error,
        ApiProblem: on_api_problem,
        HTTPException: on_http_error,
        RequestValidationError: on_invalid_request,
        Exception: on_unexpected,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)


class BodySizeLimit:
    """Refuses a request body over `max_bytes` with 413, whether it declares its length or
    streams it: the body is read (up to the limit) before the app sees the request."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is over the limit of {self.max_bytes} bytes"
        await problem(413, "body-too-large", detail)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read already, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
