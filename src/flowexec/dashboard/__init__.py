"""The web dashboard: server-rendered pages over the API's store and owner rules, at `/`.

`install_dashboard` adds it to an API app (`create_app` does so): the pages and actions, the
static assets shipped in this package, and the handlers that send a browser without a live
session to the login page and refuse cross-site actions (docs/architecture.md §16).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from flowexec.dashboard import actions, pages
from flowexec.dashboard.counts import CountsCache
from flowexec.dashboard.render import page, redirect
from flowexec.dashboard.session import COOKIE, CrossSiteRefused, LoginRequired

STATIC_PATH = "/static"


async def _to_login(request: Request, exc: Exception) -> Response:
    """A page asked for without a live session: log in, then come back. A stale or revoked
    token's cookie is cleared."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = redirect(f"/login?next={quote(target, safe='')}")
    if COOKIE in request.cookies:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def _cross_site(request: Request, exc: Exception) -> Response:
    message = "This action did not come from a dashboard page of this server, so it was refused."
    return page("error.html", {"message": message, "viewer": None}, 403)


def install_dashboard(app: FastAPI) -> None:
    app.state.dashboard_counts = CountsCache()
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount(
        STATIC_PATH, StaticFiles(packages=[("flowexec.dashboard", "static")]), name="static"
    )
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(CrossSiteRefused, _cross_site)


__all__ = ["install_dashboard"]
