"""Who is looking: the API token in the session cookie, checked on every request.

The cookie holds the bearer token itself (HttpOnly, SameSite=Strict, Secure over https), so
every request authenticates it against the store exactly as the API does: a revoked token is
logged out on its next request, and several server processes need no shared session state.
Actions carry a CSRF token derived from the bearer (only a page of this origin can read it),
and a POST whose `Origin` or `Sec-Fetch-Site` names another site is refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request

from flowexec.api.auth import ANONYMOUS, EVERYONE, Principal, api_settings, api_store

COOKIE = "flowexec_session"
FORM_TYPE = "application/x-www-form-urlencoded"
COOKIE_MAX_AGE_S = 12 * 3600
"""A browser forgets the session after this; the token itself stays valid."""


class LoginRequired(Exception):
    """No valid session: the handler sends the browser to the login page."""


class CrossSiteRefused(Exception):
    """A POST from another site, or without this session's CSRF token."""


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    csrf: str
    auth: bool
    """False when the server runs `--insecure-no-auth`: no login, no logout."""


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"flowexec-dashboard-csrf", hashlib.sha256).hexdigest()


async def viewer(request: Request) -> Viewer:
    """The session's viewer; `LoginRequired` without a live token."""
    if not api_settings(request).auth:
        return Viewer(EVERYONE, csrf_for(ANONYMOUS), auth=False)
    bearer = request.cookies.get(COOKIE)
    if not bearer:
        raise LoginRequired
    token = await api_store(request).authenticate(bearer)
    if token is None:
        raise LoginRequired
    return Viewer(Principal.of(token), csrf_for(bearer), auth=True)


async def form_fields(request: Request) -> dict[str, str]:
    """A dashboard form's fields (URL-encoded, as its forms post them; the app's body limit
    bounds the size), first value of each. Parsed here so that forms need no multipart
    library."""
    if not request.headers.get("content-type", "").startswith(FORM_TYPE):
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def check_same_origin(request: Request) -> None:
    """Refuse a POST that a browser says came from another site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CrossSiteRefused
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc != request.headers.get("host", ""):
            raise CrossSiteRefused


async def acting_viewer(request: Request) -> Viewer:
    """The viewer of an action: same origin and this session's CSRF token, or refused."""
    check_same_origin(request)
    seen = await viewer(request)
    sent = (await form_fields(request)).get("csrf", "")
    if not hmac.compare_digest(sent, seen.csrf):
        raise CrossSiteRefused
    return seen


Looking = Annotated[Viewer, Depends(viewer)]
Acting = Annotated[Viewer, Depends(acting_viewer)]
