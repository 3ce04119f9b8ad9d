"""`GET /executions/{id}/events`: the log as JSON pages, or live as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response, StreamingResponse

from flowexec.api.auth import Caller, Store, api_settings
from flowexec.api.schemas import EventOut, EventPage
from flowexec.api.settings import MAX_PAGE
from flowexec.api.streams import SSE_MEDIA_TYPE, StreamSlots, sse_stream
from flowexec.errors import ValidationError
from flowexec.store.event_log import MAX_EVENT_INDEX
from flowexec.store.subscription import follow_events

router = APIRouter(tags=["events"])

STREAM_DESCRIPTION = (
    "With `Accept: text/event-stream`: a live stream, each event's SSE `id` its index. "
    "Reconnect with `Last-Event-ID` to resume after that index. An `end` event follows the "
    "terminal event; 204 when nothing is left to send."
)


def _types(values: list[str] | None) -> list[str] | None:
    """`types=a&types=b` or `types=a,b`."""
    if values is None:
        return None
    return [t for value in values for t in value.split(",") if t]


def resume_index(last_event_id: str | None, from_index: int) -> int:
    if last_event_id is None:
        return from_index
    value = last_event_id.strip()
    if not value.isdigit() or int(value) >= MAX_EVENT_INDEX:
        raise ValidationError("Last-Event-ID must be an event index this stream sent")
    return int(value) + 1


@router.get(
    "/executions/{execution_id}/events",
    response_model=EventPage,
    description=STREAM_DESCRIPTION,
    responses={
        200: {"content": {SSE_MEDIA_TYPE: {"schema": {"type": "string"}}}},
        204: {"description": "A stream asked for after the execution's last event."},
    },
)
async def get_events(
    request: Request,
    execution_id: str,
    caller: Caller,
    store: Store,
    from_index: Annotated[int, Query(ge=0, le=MAX_EVENT_INDEX)] = 0,
    types: Annotated[list[str] | None, Query(description="Only these event types.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="JSON pages only.")] = MAX_PAGE,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response | EventPage:
    execution = caller.visible(await store.get(execution_id), execution_id)
    wanted = _types(types)
    if SSE_MEDIA_TYPE not in request.headers.get("accept", ""):
        page = await store.get_events(execution_id, from_index, limit, wanted)
        next_index = page[-1].index + 1 if page else from_index
        return EventPage(items=[EventOut.of(e) for e in page], next_index=next_index)
    start = resume_index(last_event_id, from_index)
    if execution.status.is_terminal and not await store.get_events(
        execution_id, start, 1, wanted
    ):
        return Response(status_code=204)
    slots: StreamSlots = request.app.state.streams
    slots.take(caller.key)
    stream = sse_stream(
        follow_events(store, execution_id, from_index=start, types=wanted),
        keepalive_s=api_settings(request).keepalive_s,
        slots=slots,
        key=caller.key,
    )
    return StreamingResponse(
        stream,
        media_type=SSE_MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
