"""The dashboard's guards over plain HTTP (no browser needed): cross-site actions, cookie
flags behind https, where a login may send the browser, logout, and the insecure mode."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from flowexec.api import ApiSettings, create_app
from flowexec.dashboard.render import human_duration
from flowexec.model import ExecutionStatus
from flowexec.store.protocol import ExecutionStore
from tests.api.conftest import serving
from tests.dashboard.conftest import Dashboard


@pytest.fixture
def http(dashboard: Dashboard) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard.base_url) as client:
        yield client


def logged_in(http: httpx.Client, dashboard: Dashboard, role: str = "alice") -> str:
    """Logs `http` in; this session's CSRF token."""
    answer = http.post("/login", data={"token": dashboard.tokens[role], "next": "/"})
    assert answer.status_code == 303
    page = http.get("/")
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found is not None
    return found.group(1)


def queued(dashboard: Dashboard) -> str:
    async def create(store: ExecutionStore) -> str:
        return await dashboard.client().create("f", owner_id="alice", start=False)

    return dashboard.run(create)


def test_actions_from_another_site_or_without_the_csrf_token_are_refused(
    http: httpx.Client, dashboard: Dashboard
) -> None:
    csrf = logged_in(http, dashboard)
    execution_id = queued(dashboard)
    stop = f"/executions/{execution_id}/stop"
    for data, headers in [
        ({}, {}),
        ({"csrf": "0" * 64}, {}),
        ({"csrf": csrf}, {"Origin": "https://evil.example"}),
        ({"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
    ]:
        answer = http.post(stop, data=data, headers=headers)
        assert answer.status_code == 403, (data, headers)
        assert "refused" in answer.text
        assert dashboard.status_of(execution_id) is ExecutionStatus.CREATED

    answer = http.post(stop, data={"csrf": csrf}, headers={"Origin": dashboard.base_url})
    assert answer.status_code == 303
    assert dashboard.status_of(execution_id) is ExecutionStatus.STOPPED

    assert http.post(f"/executions/{execution_id}/explode", data={"csrf": csrf}).status_code == 400
    again = http.post(stop, data={"csrf": csrf})
    assert again.status_code == 409 and "stopped" in again.text
    for action in ("retry", "pause", "resume"):  # a finished execution stays finished
        answer = http.post(f"/executions/{execution_id}/{action}", data={"csrf": csrf})
        assert answer.status_code == 409, action
    assert dashboard.status_of(execution_id) is ExecutionStatus.STOPPED


def test_the_cookie_is_secure_behind_https_and_a_login_stays_on_this_site(
    http: httpx.Client, dashboard: Dashboard
) -> None:
    answer = http.post(
        "/login", data={"token": dashboard.tokens["alice"], "next": "//evil.example/x"},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    for flag in ("HttpOnly", "SameSite=strict", "Secure", "Path=/"):
        assert flag in cookie


def test_logging_out_ends_the_session(http: httpx.Client, dashboard: Dashboard) -> None:
    csrf = logged_in(http, dashboard)
    answer = http.post("/logout", data={"csrf": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert http.get("/").status_code == 303


def test_the_event_stream_needs_a_session_and_the_owner(
    http: httpx.Client, dashboard: Dashboard
) -> None:
    execution_id = queued(dashboard)
    assert http.get(f"/executions/{execution_id}/events").status_code == 303
    logged_in(http, dashboard, "bob")
    assert http.get(f"/executions/{execution_id}/events").status_code == 404


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.0123, "12 ms"), (4.25, "4.2 s"), (192, "3 min 12 s"), (7500, "2 h 5 min"),
     (3 * 86400 + 4 * 3600, "3 d 4 h"), (None, "")],
)
def test_durations_read_as_a_person_would_say_them(seconds: float | None, shown: str) -> None:
    assert human_duration(seconds) == shown


async def test_without_auth_every_page_opens_without_a_login(store: ExecutionStore) -> None:
    app = create_app(store, settings=ApiSettings(auth=False))
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/login")).headers["location"] == "/"
