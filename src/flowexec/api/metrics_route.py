"""`GET /metrics`: the Prometheus exposition of the server's store, beside the API.

Outside `/api/v1` and without a token, as scrapers expect; it shows per-flow queue figures
and counts, never an execution's contents (docs/architecture.md, "Metrics").
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    body, content_type = await request.app.state.metrics.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)
