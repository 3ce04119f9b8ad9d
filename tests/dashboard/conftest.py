"""The dashboard as a person uses it: a real server on a loopback port and real Chromium.

The server (uvicorn with `create_app`, as `flowexec serve` runs it) lives in a thread with its
own event loop, so the tests drive the browser through Playwright's synchronous API. One
browser for the session; each test gets a fresh browser context (no cookies) and a server over
its own tables, on both backends. Without Chromium the browser tests are skipped, saying how to
get it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from flowexec import open_store
from flowexec.api import ApiSettings, create_app
from flowexec.model import ExecutionStatus
from flowexec.runtime.client import Client
from flowexec.store.protocol import ExecutionStore
from tests.api.conftest import serving
from tests.conftest import drop_prefixed_tables

CHROMIUM_ENV = "FLOWEXEC_TEST_CHROMIUM"
HOW_TO_GET_CHROMIUM = (
    "the dashboard's browser tests need Chromium and the playwright package: "
    "`apt-get install -y chromium` (Debian; or set FLOWEXEC_TEST_CHROMIUM to a Chromium "
    "executable) and `pip install -e '.[dev]'`"
)
SETTINGS = ApiSettings(keepalive_s=0.5)
T = TypeVar("T")


def chromium_path() -> str | None:
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for a module's tests (they are all in test_browser.py). Playwright's sync
    API keeps an event loop running in the main thread while it is open, so it must close
    before any asyncio test runs."""
    executable = chromium_path()
    if executable is None:
        pytest.skip(HOW_TO_GET_CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(HOW_TO_GET_CHROMIUM)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Dashboard:
    """A served app over one store, its event loop in a thread; `tokens` by role."""

    url: str
    prefix: str
    base_url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    store: ExecutionStore | None = None
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _stop: asyncio.Event | None = None

    def run(self, work: Callable[[ExecutionStore], Awaitable[T]]) -> T:
        """`work(store)` on the server's loop, from the test's thread."""
        assert self.store is not None
        future = asyncio.run_coroutine_threadsafe(_awaited(work(self.store)), self._loop)
        return future.result(timeout=60)

    def client(self) -> Client:
        assert self.store is not None
        return Client(self.store)

    def status_of(self, execution_id: str) -> ExecutionStatus:
        async def read(store: ExecutionStore) -> ExecutionStatus:
            execution = await store.get(execution_id)
            assert execution is not None
            return execution.status

        return self.run(read)

    async def _serve(self, ready: Future[None]) -> None:
        self._stop = asyncio.Event()
        try:
            self.store = await open_store(self.url, table_prefix=self.prefix)
            for role, owner, admin in (("alice", "alice", False), ("bob", "bob", False),
                                       ("admin", "ops", True)):
                issued = await self.store.create_token(owner, name=role, admin=admin)
                self.tokens[role] = issued.bearer
            async with serving(create_app(self.store, settings=SETTINGS)) as base_url:
                self.base_url = base_url
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            if self.store is not None:
                await self.store.close()

    def start(self) -> threading.Thread:
        ready: Future[None] = Future()
        thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._serve(ready),), daemon=True
        )
        thread.start()
        ready.result(timeout=30)
        return thread

    def stop(self, thread: threading.Thread) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        thread.join(timeout=30)
        self._loop.close()


async def _awaited(value: Awaitable[T]) -> T:
    return await value


@pytest.fixture
def dashboard(backend: str, store_url: str, unique_prefix: str) -> Iterator[Dashboard]:
    served = Dashboard(store_url, unique_prefix)
    thread = served.start()
    try:
        yield served
    finally:
        served.stop(thread)
        if backend == "postgres":
            drop_prefixed_tables(store_url, unique_prefix)


@pytest.fixture
def page(browser: Any, dashboard: Dashboard) -> Iterator[Any]:
    context = browser.new_context(base_url=dashboard.base_url)
    context.set_default_timeout(20_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def log_in(page: Any, dashboard: Dashboard, role: str, then: str = "/") -> None:
    page.goto(then)
    page.fill("#token", dashboard.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"**{then}")
