"""The dashboard's pages: overview, a flow's roots, an execution, search, and the login form.

Every page needs a live session (`Looking`); a flowexec error (another owner's execution, a
cursor not handed out here) becomes an HTML page with the API's status for it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from flowexec.api.auth import Store, api_settings
from flowexec.api.executions import Commands
from flowexec.api.problems import error_problem
from flowexec.api.settings import DEFAULT_PAGE, MAX_PAGE
from flowexec.dashboard import views
from flowexec.dashboard.counts import CountsCache
from flowexec.dashboard.render import page, redirect
from flowexec.dashboard.session import Looking, Viewer
from flowexec.errors import FlowexecError, ValidationError
from flowexec.model import ExecutionStatus, check_id

router = APIRouter(include_in_schema=False)


def base_context(request: Request, viewer: Viewer) -> dict[str, Any]:
    return {"viewer": viewer, "who": viewer.principal, "path": request.url.path}


def error_page(request: Request, viewer: Viewer, exc: FlowexecError) -> Response:
    """The error's message, with the status the API answers it with."""
    status, _ = error_problem(exc)
    return page("error.html", {**base_context(request, viewer), "message": str(exc)}, status)


async def shown(
    request: Request, viewer: Viewer, name: str, context: Awaitable[dict[str, Any]]
) -> Response:
    """`name` rendered with `context`, or the error page for the flowexec error it raised."""
    try:
        values = await context
    except FlowexecError as exc:
        return error_page(request, viewer, exc)
    return page(name, {**base_context(request, viewer), **values})


def _status(value: str | None) -> ExecutionStatus | None:
    if not value:
        return None
    try:
        return ExecutionStatus(value)
    except ValueError:
        names = ", ".join(s.value for s in ExecutionStatus)
        raise ValidationError(f"status must be one of {names}, not {value!r}") from None


@router.get("/")
async def overview(request: Request, viewer: Looking, store: Store) -> Response:
    cache: CountsCache = request.app.state.dashboard_counts
    return await shown(
        request, viewer, "overview.html", views.overview(store, cache, viewer.principal)
    )


@router.get("/flows/{flow_id}")
async def flow(
    request: Request,
    flow_id: str,
    viewer: Looking,
    store: Store,
    status: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> Response:
    async def context() -> dict[str, Any]:
        return await views.flow_page(
            store, viewer.principal, check_id(flow_id, "flow_id"),
            status=_status(status), cursor=cursor, limit=limit,
        )

    return await shown(request, viewer, "flow.html", context())


@router.get("/executions/{execution_id}")
async def execution(
    request: Request, execution_id: str, viewer: Looking, store: Store, client: Commands
) -> Response:
    context = views.execution_page(store, client, viewer.principal, execution_id)
    return await shown(request, viewer, "execution.html", context)


@router.get("/search")
async def search(request: Request, viewer: Looking, id: str = "") -> Response:
    """An execution id typed into the search box: its page (which says if it is not found)."""
    wanted = id.strip()
    if not wanted:
        return redirect("/")
    return redirect(f"/executions/{quote(wanted, safe='')}")


@router.get("/login")
async def login_form(request: Request, next: str = "/", error: str = "") -> Response:
    if not api_settings(request).auth:
        return redirect("/")
    return page("login.html", {"next": next, "error": error, "viewer": None})
