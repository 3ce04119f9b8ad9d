"""`serve_metrics`: a worker's `/metrics` over HTTP while its loop runs.

The server is the standard library's threaded WSGI server, as prometheus_client's own
`start_http_server` uses, on a thread of its own so that a scrape never waits for the
worker's loop to be idle. Each scrape asks the loop to render (`FlowexecMetrics.render`,
which may read the store) and waits for the answer; every worker state the metrics read
is therefore touched on the loop only. Leaving the `async with` stops the server and joins
its thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer

from flowexec.errors import ConfigError
from flowexec.metrics.process import FlowexecMetrics

log = logging.getLogger("flowexec.metrics")

SCRAPE_TIMEOUT_S = 10.0
"""How long a scrape waits for the loop to render before answering 503."""

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _QuietHandler(WSGIRequestHandler):
    """No access log line on stderr per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _wsgi_app(
    metrics: FlowexecMetrics, loop: asyncio.AbstractEventLoop
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"metrics are at /metrics\n"]
        rendering = metrics.render(environ.get("HTTP_ACCEPT"))
        try:
            future = asyncio.run_coroutine_threadsafe(rendering, loop)
        except RuntimeError:  # the loop is closed: the worker is gone
            rendering.close()
            future = None
        try:
            if future is None:
                raise concurrent.futures.CancelledError
            body, content_type = future.result(SCRAPE_TIMEOUT_S)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            if future is not None:
                future.cancel()
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"the worker did not render its metrics in time\n"]
        start_response(
            "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


@asynccontextmanager
async def serve_metrics(metrics: FlowexecMetrics, host: str, port: int) -> AsyncIterator[int]:
    """Serve `metrics` at `http://host:port/metrics` for the duration of the block; yields
    the port bound (useful with port 0). A host or port that cannot be bound is a
    `ConfigError`."""
    loop = asyncio.get_running_loop()
    try:
        server = make_server(
            host, port, _wsgi_app(metrics, loop),
            server_class=ThreadingWSGIServer, handler_class=_QuietHandler,
        )
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from None
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1},
        name="flowexec-metrics", daemon=True,
    )
    thread.start()
    bound_port = int(server.server_address[1])
    log.info("metrics at http://%s:%d/metrics", host, bound_port)
    try:
        yield bound_port
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        await asyncio.to_thread(thread.join)
