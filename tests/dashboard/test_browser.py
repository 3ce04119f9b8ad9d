"""The dashboard in real Chromium, on both backends: log in, page a flow, watch a live
execution finish, stop one with its button, and meet another owner's execution refused."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flowexec.model import ExecutionStatus
from flowexec.store.protocol import ExecutionStore
from tests.dashboard.conftest import HOW_TO_GET_CHROMIUM, Dashboard, log_in
from tests.worker_app import SLEEPER
from tests.worker_processes import WorkerProcess, stop_processes

sync_api = pytest.importorskip("playwright.sync_api", reason=HOW_TO_GET_CHROMIUM)
expect = sync_api.expect

ROOTS = 120
WORKER_SETTINGS = {"poll_interval_s": 0.1, "recovery": False, "heartbeat_interval_ms": 500}


def sleeper(dashboard: Dashboard, seconds: float, owner: str = "alice") -> str:
    async def create(store: ExecutionStore) -> str:
        return await dashboard.client().create(
            SLEEPER, owner_id=owner, integration={"seconds": seconds}
        )

    return dashboard.run(create)


def test_every_page_needs_a_session_and_sends_the_security_headers(
    page: Any, dashboard: Dashboard
) -> None:
    for path in ("/", "/flows/any", "/executions/any"):
        response = page.goto(path)
        assert page.url.startswith(f"{dashboard.base_url}/login?next=")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp

    page.fill("#token", "fxt_not_a_token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("That token is unknown or revoked.")

    log_in(page, dashboard, "alice")
    expect(page.locator("h1")).to_have_text("Flows")
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    scripts = page.locator("script")
    assert scripts.count() == 1 and scripts.first.get_attribute("src") == "/static/app.js"


def test_a_flow_pages_through_120_roots_filters_and_finds_by_id(
    page: Any, dashboard: Dashboard
) -> None:
    async def seed(store: ExecutionStore) -> list[str]:
        client = dashboard.client()
        ids = await client.create_many(
            "orders", [{"owner_id": "alice", "integration": {"n": n}} for n in range(ROOTS)],
            start=False,
        )
        for execution_id in ids[:3]:
            await client.stop(execution_id)
        await client.create("orders", owner_id="bob")
        return list(ids)

    ids = dashboard.run(seed)
    log_in(page, dashboard, "alice")
    page.get_by_role("link", name="orders").click()
    expect(page.locator("h1")).to_have_text("orders")

    seen: list[str] = []
    while True:
        seen += page.locator("table.roots tbody a").all_inner_texts()
        older = page.get_by_role("link", name="Older »")
        if older.count() == 0:
            break
        older.click()
        page.wait_for_load_state()
    assert len(seen) == ROOTS and set(seen) == set(ids)

    page.select_option("#status", "stopped")
    page.wait_for_url("**status=stopped**")
    expect(page.locator("table.roots tbody tr")).to_have_count(3)
    expect(page.locator("table.roots tbody .status")).to_have_text(["stopped"] * 3)

    page.fill("#search-id", ids[7])
    page.press("#search-id", "Enter")
    page.wait_for_url(f"**/executions/{ids[7]}")
    expect(page.locator("#execution .status")).to_have_text("queued")


def test_a_live_execution_shows_its_events_and_completes_without_a_reload(
    page: Any, dashboard: Dashboard, tmp_path: Path
) -> None:
    execution_id = sleeper(dashboard, 1.0)
    log_in(page, dashboard, "alice", f"/executions/{execution_id}")
    expect(page.locator("#execution .status")).to_have_text("queued")
    page.evaluate("window.stillTheSamePage = true")

    worker = WorkerProcess(
        dashboard.url, dashboard.prefix, "dash-worker", tmp_path, WORKER_SETTINGS
    )
    try:
        events = page.locator("#events td:nth-child(3)")
        expect(events).to_contain_text(["flow:started", "node:started", "node:completed",
                                        "flow:completed"])
        expect(page.locator("#execution .status")).to_have_text("completed")
        expect(page.locator("#execution .status")).to_have_class("status status-completed")
    finally:
        stop_processes([worker])
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("form[data-when]:visible")).to_have_count(0)  # nothing left to do


def test_the_buttons_pause_resume_and_stop_a_running_execution(
    page: Any, dashboard: Dashboard, tmp_path: Path
) -> None:
    execution_id = sleeper(dashboard, 300)
    worker = WorkerProcess(
        dashboard.url, dashboard.prefix, "dash-worker", tmp_path, WORKER_SETTINGS
    )
    try:
        deadline = time.monotonic() + 30
        while dashboard.status_of(execution_id) is not ExecutionStatus.RUNNING:
            assert worker.alive and time.monotonic() < deadline, worker.tail()
            time.sleep(0.1)
        log_in(page, dashboard, "alice", f"/executions/{execution_id}")
        expect(page.locator("#execution .status")).to_have_text("running")
        expect(page.get_by_text("dash-worker").first).to_be_visible()  # the claim

        for button, status in (("Pause", "paused"), ("Resume", "running"), ("Stop", "stopped")):
            page.once("dialog", lambda dialog: dialog.accept())
            page.get_by_role("button", name=button).click()
            expect(page.locator("#execution .status")).to_have_text(status)
        expect(page.locator("form[data-when]:visible")).to_have_count(0)
    finally:
        stop_processes([worker])
    assert dashboard.status_of(execution_id) is ExecutionStatus.STOPPED


def test_a_dismissed_confirmation_does_nothing(page: Any, dashboard: Dashboard) -> None:
    execution_id = sleeper(dashboard, 1)
    log_in(page, dashboard, "alice", f"/executions/{execution_id}")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#execution .status")).to_have_text("queued")
    assert dashboard.status_of(execution_id) is ExecutionStatus.CREATED


def test_another_owners_execution_is_refused(page: Any, dashboard: Dashboard) -> None:
    theirs = sleeper(dashboard, 1, owner="bob")
    log_in(page, dashboard, "alice")
    expect(page.get_by_role("link", name=SLEEPER)).to_have_count(0)

    response = page.goto(f"/executions/{theirs}")
    assert response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("does not exist")
    expect(page.locator("form[action*='/executions/']")).to_have_count(0)

    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(f"/executions/{theirs}/stop", form={"csrf": csrf})
    assert answer.status == 404
    assert dashboard.status_of(theirs) is ExecutionStatus.CREATED

    page.context.clear_cookies()
    log_in(page, dashboard, "admin", f"/executions/{theirs}")  # an admin sees every owner
    expect(page.locator("#execution .status")).to_have_text("queued")
    expect(page.get_by_role("button", name="Stop")).to_be_visible()


def test_a_revoked_token_is_logged_out_on_its_next_request(
    page: Any, dashboard: Dashboard
) -> None:
    log_in(page, dashboard, "alice")
    dashboard.run(lambda store: store.revoke_token("alice"))
    page.reload()
    assert page.url.startswith(f"{dashboard.base_url}/login")
    assert page.context.cookies() == []


def test_times_show_in_the_viewers_zone_and_an_execution_fits_a_phone(
    browser: Any, dashboard: Dashboard
) -> None:
    execution_id = sleeper(dashboard, 1)

    async def created(store: ExecutionStore) -> datetime:
        execution = await store.get(execution_id)
        assert execution is not None
        return execution.created_at

    local = (dashboard.run(created)).astimezone(ZoneInfo("Asia/Kolkata"))
    context = browser.new_context(
        base_url=dashboard.base_url, timezone_id="Asia/Kolkata", locale="en-GB",
        viewport={"width": 390, "height": 844}, is_mobile=True,
    )
    try:
        phone = context.new_page()
        log_in(phone, dashboard, "alice", f"/executions/{execution_id}")
        expect(phone.locator("dd time").first).to_have_text(local.strftime("%d/%m/%Y, %H:%M:%S"))
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the screen: wide tables scroll in their card
        expect(phone.get_by_role("button", name="Stop")).to_be_in_viewport()
    finally:
        context.close()
