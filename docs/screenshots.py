"""Screenshots of the dashboard's main pages: `python docs/screenshots.py` (needs Chromium).

Runs a few demo flows on a throwaway SQLite file with a real `Worker` (one completes with
children, one fails with a traceback, one is still running), serves the app on a loopback port
and photographs the pages into docs/screenshots/ with headless Chromium (`apt-get install
chromium`; `FLOWEXEC_CHROMIUM` names another executable).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

import uvicorn
from playwright.async_api import Page, async_playwright

from flowexec import App, FlowContext, Worker, open_store
from flowexec.api import create_app
from flowexec.runtime.client import Client
from flowexec.store.protocol import ExecutionStore

OUT = Path(__file__).resolve().parent / "screenshots"
app = App()


async def _step(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "ok"


@app.flow("orders")
async def orders(ctx: FlowContext) -> dict[str, int]:
    await ctx.node("charge", _step, 0.05)
    for n in range(2):
        await ctx.emit("notify", {"n": n}, flow_id="notify")
    await ctx.node("ship", _step, 0.1)
    return {"items": 3}


@app.flow("notify")
async def notify(ctx: FlowContext) -> str:
    return await ctx.node("send", _step, 0.02)


async def _parse(text: str) -> int:
    return int(text)


@app.flow("reports", max_retries=1)
async def reports(ctx: FlowContext) -> int:
    return await ctx.node("parse", _parse, "not a number")


@app.flow("imports")
async def imports(ctx: FlowContext) -> str:
    await ctx.node("download", _step, 0.1)
    return await ctx.node("load", _step, 600)


async def _seed(store: ExecutionStore) -> dict[str, str]:
    client = Client(store)
    ids = {"order": "", "report": "", "import": ""}
    for n in range(24):
        ids["order"] = await client.create("orders", owner_id="shop", integration={"order": n})
    for _ in range(2):
        ids["report"] = await client.create("reports", owner_id="finance")
    ids["import"] = await client.create("imports", owner_id="shop")
    await client.create("imports", owner_id="shop", start=False)
    return ids


async def _shoot(page: Page, path: str, name: str) -> None:
    await page.goto(path)
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)


async def main() -> None:
    executable = os.environ.get("FLOWEXEC_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        raise SystemExit("needs Chromium: apt-get install -y chromium (or FLOWEXEC_CHROMIUM)")
    OUT.mkdir(exist_ok=True)
    logging.getLogger("flowexec").setLevel(logging.CRITICAL)  # the failing demo flow's retries
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{tmp}/demo.db")
        bearer = (await store.create_token("ops", name="ops", admin=True)).bearer
        ids = await _seed(store)
        worker = Worker(app, store, worker_id="worker-1", poll_interval_s=0.05,
                        install_signal_handlers=False, retry_backoff_base_ms=10)
        running = asyncio.create_task(worker.run())
        while not await _settled(store, ids):
            await asyncio.sleep(0.1)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(create_app(store), log_config=None))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.05)
        host, port = sock.getsockname()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=executable)
            laptop = await browser.new_page(
                base_url=f"http://{host}:{port}", viewport={"width": 1280, "height": 800}
            )
            await laptop.goto("/login")
            await laptop.screenshot(path=str(OUT / "login.png"))
            await laptop.fill("#token", bearer)
            await laptop.click("button[type=submit]")
            await laptop.wait_for_url("**/")
            await _shoot(laptop, "/", "overview")
            await _shoot(laptop, "/flows/orders", "flow")
            await _shoot(laptop, f"/executions/{ids['order']}", "execution")
            await _shoot(laptop, f"/executions/{ids['report']}", "execution-failed")
            await _shoot(laptop, f"/executions/{ids['import']}", "execution-running")
            phone = await browser.new_page(
                base_url=f"http://{host}:{port}", viewport={"width": 390, "height": 844},
                device_scale_factor=2,
            )
            await phone.context.add_cookies(await laptop.context.cookies())
            await _shoot(phone, f"/executions/{ids['order']}", "phone-execution")
            await browser.close()
        server.should_exit = True
        await serving
        worker.stop(force=True)
        await running
        await store.close()


async def _settled(store: ExecutionStore, ids: dict[str, str]) -> bool:
    """The order and the report finished, the import is inside its long node."""
    order, report, running = [await store.get(ids[k]) for k in ("order", "report", "import")]
    done = order is not None and order.status.is_terminal
    failed = report is not None and report.status.value == "failed"
    return done and failed and running is not None and running.status.value == "running"


if __name__ == "__main__":
    asyncio.run(main())
