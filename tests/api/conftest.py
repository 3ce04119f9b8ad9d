"""A real API server for each test: uvicorn on a free loopback port, over the test's store
(both backends), with tokens for two owners and an admin."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from flowexec.api import API_PREFIX, ApiSettings, create_app
from flowexec.store.protocol import ExecutionStore

TEST_SETTINGS = ApiSettings(keepalive_s=0.2, max_streams_per_token=2, max_body_bytes=64 << 10)
"""Quick keep-alives, and bounds small enough to reach in a test."""


@dataclass
class Api:
    base_url: str
    store: ExecutionStore
    tokens: dict[str, str]
    """Bearer tokens by role: `alice`, `bob` (owners) and `admin`."""

    def client(self, role: str | None = "alice") -> httpx.AsyncClient:
        headers = {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.AsyncClient(base_url=self.base_url + API_PREFIX, headers=headers)


def free_loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` under uvicorn on a free loopback port; its base URL. Stopped on the way out."""
    sock = free_loopback_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        host, port = sock.getsockname()
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def api(store: ExecutionStore) -> AsyncIterator[Api]:
    tokens = {
        "alice": (await store.create_token("alice", name="alice")).bearer,
        "bob": (await store.create_token("bob", name="bob")).bearer,
        "admin": (await store.create_token("ops", name="admin", admin=True)).bearer,
    }
    async with serving(create_app(store, settings=TEST_SETTINGS)) as base_url:
        yield Api(base_url, store, tokens)
