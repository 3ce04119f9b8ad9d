"""What a viewer does: log in and out, act on an execution, and follow its events live.

Actions go through the API's `Client` after the same visibility check as the API's routes, so
another owner's execution is refused as missing (404). The live log is the API's SSE stream,
authenticated by the session cookie (an `EventSource` cannot send a bearer header).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Request
from starlette.responses import Response, StreamingResponse

from flowexec.api.auth import Store, api_settings, api_store
from flowexec.api.events import resume_index
from flowexec.api.executions import Commands
from flowexec.api.streams import SSE_MEDIA_TYPE, StreamSlots, sse_stream
from flowexec.dashboard.pages import error_page
from flowexec.dashboard.render import page, redirect
from flowexec.dashboard.session import (
    COOKIE,
    COOKIE_MAX_AGE_S,
    Acting,
    Looking,
    check_same_origin,
    form_fields,
)
from flowexec.errors import ExecutionNotFound, FlowexecError, ValidationError
from flowexec.store.subscription import follow_events

router = APIRouter(include_in_schema=False)


def _local_path(target: str) -> str:
    """Where to go after logging in: a path on this site only, never another host."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/login")
async def login(request: Request) -> Response:
    check_same_origin(request)
    fields = await form_fields(request)
    bearer, next = fields.get("token", "").strip(), fields.get("next", "/")
    if not bearer or await api_store(request).authenticate(bearer) is None:
        context = {"next": next, "error": "That token is unknown or revoked.", "viewer": None}
        return page("login.html", context, 401)
    response = redirect(_local_path(next))
    response.set_cookie(
        COOKIE, bearer, max_age=COOKIE_MAX_AGE_S, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request, viewer: Acting) -> Response:
    response = redirect("/login" if api_settings(request).auth else "/")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/executions/{execution_id}/{action}")
async def act(
    request: Request,
    execution_id: str,
    action: str,
    viewer: Acting,
    store: Store,
    client: Commands,
) -> Response:
    """Stop, pause, resume or retry, then back to the execution's page."""
    who = viewer.principal.owner_id
    try:
        viewer.principal.visible(await store.get(execution_id), execution_id)
        if action == "stop":
            await client.stop(execution_id, f"stopped from the dashboard by {who}")
        elif action == "pause":
            await client.pause(execution_id, f"paused from the dashboard by {who}")
        elif action == "resume":
            await client.resume(execution_id)
        elif action == "retry":
            await client.retry(execution_id, f"retried from the dashboard by {who}")
        else:
            raise ValidationError(f"no action {action!r}: stop, pause, resume or retry")
    except FlowexecError as exc:
        return error_page(request, viewer, exc)
    return redirect(f"/executions/{quote(execution_id, safe='')}")


@router.get("/executions/{execution_id}/events")
async def live_events(
    request: Request,
    execution_id: str,
    viewer: Looking,
    store: Store,
    from_index: int = 0,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The execution's events from `from_index` as Server-Sent Events, as the API sends them."""
    execution = await store.get(execution_id)
    if execution is None or not viewer.principal.may_see(execution):
        return error_page(request, viewer, ExecutionNotFound(execution_id))
    start = resume_index(last_event_id, max(from_index, 0))
    if execution.status.is_terminal and not await store.get_events(execution_id, start, 1):
        return Response(status_code=204)
    slots: StreamSlots = request.app.state.streams
    key = viewer.principal.key
    slots.take(key)
    stream = sse_stream(
        follow_events(store, execution_id, from_index=start),
        keepalive_s=api_settings(request).keepalive_s,
        slots=slots,
        key=key,
    )
    return StreamingResponse(
        stream, media_type=SSE_MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
