"""`create_app`: the HTTP API as an ASGI app over one store, to serve or to mount.

Routers per area (executions, events, system), all under `API_PREFIX`; the dashboard
(`flowexec.dashboard`) is installed at `/`. The store is opened by the app's lifespan when
given as a URL, and closed with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from flowexec.api import events, executions, metrics_route, system
from flowexec.api.problems import PROBLEM_JSON, BodySizeLimit, install_problem_handlers
from flowexec.api.schemas import Problem
from flowexec.api.settings import API_PREFIX, ApiSettings
from flowexec.api.streams import StreamSlots
from flowexec.dashboard import install_dashboard
from flowexec.metrics import FlowexecMetrics
from flowexec.model import DEFAULT_TABLE_PREFIX
from flowexec.runtime.client import Client
from flowexec.runtime.stores import use_store
from flowexec.store.protocol import ExecutionStore
from flowexec.version import __version__

_PROBLEM_RESPONSE = {"model": Problem, "content": {PROBLEM_JSON: {}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {**_PROBLEM_RESPONSE, "description": description}
    for status, description in [
        (400, "Bad input"),
        (401, "No token, or an unknown or revoked one"),
        (403, "The token may not do this"),
        (404, "No such execution (for this token) or resource"),
        (409, "The lifecycle does not allow it"),
        (413, "The body is over the size limit"),
        (422, "The request does not match the schema"),
        (429, "Too many event streams for this token"),
        (503, "The store is unavailable"),
    ]
}


def create_app(
    store_or_url: ExecutionStore | str | None = None,
    *,
    settings: ApiSettings | None = None,
    table_prefix: str = DEFAULT_TABLE_PREFIX,
    **store_options: Any,
) -> FastAPI:
    """The API over an open store (left open at shutdown) or a URL (opened and closed with
    the app)."""
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store, owned = await use_store(store_or_url, table_prefix=table_prefix, **store_options)
        app.state.store = store
        app.state.client = Client(store)
        app.state.metrics = FlowexecMetrics(store)
        try:
            async with app.state.dashboard_counts.refreshing(store):
                yield
        finally:
            if owned:
                await store.close()

    app = FastAPI(
        title="flowexec",
        version=__version__,
        description="Create, follow and steer flowexec executions.",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.streams = StreamSlots(settings.max_streams_per_token)
    for router in (executions.router, events.router, system.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics_route.router)
    install_dashboard(app)
    install_problem_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
