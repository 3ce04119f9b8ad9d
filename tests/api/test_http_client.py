"""`HttpClient` mirrors the database `Client` over real HTTP: same methods, results and
typed errors."""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvicorn

from flowexec.api import create_app
from flowexec.errors import (
    ApiRefused,
    ExecutionNotCompleted,
    ExecutionNotFound,
    ExecutionTimeout,
    InvalidTransition,
    StoreUnavailable,
    ValidationError,
)
from flowexec.http import HttpClient
from flowexec.model import ExecutionOptions, ExecutionStatus
from flowexec.runtime import FlowEvent
from flowexec.runtime.client import Client, InvalidItem

from .conftest import TEST_SETTINGS, Api, free_loopback_socket
from .runs import claim, complete, log_lines


async def test_the_http_client_drives_an_execution_like_the_database_client(api: Api) -> None:
    async with HttpClient(api.base_url, api.tokens["alice"]) as client:
        execution_id = await client.create(
            "f", integration={"a": 1}, options=ExecutionOptions(debug=True),
            events=[FlowEvent("paid", {"n": 1})], start=False,
        )
        assert await client.start(execution_id) is True
        epoch = await claim(api.store, execution_id)
        await client.pause(execution_id, "hold")
        await client.resume(execution_id)
        execution = await client.get(execution_id)
        direct = await Client(api.store).get(execution_id)
        assert execution == direct
        assert execution.options == ExecutionOptions(debug=True)
        assert execution.external_events is not None
        assert execution.external_events[0]["event_name"] == "paid"
        assert [n.id for n in await client.tree(execution_id)] == [execution_id]
        with pytest.raises(ExecutionNotCompleted):
            await client.result(execution_id)
        with pytest.raises(ExecutionTimeout):
            await client.wait(execution_id, timeout=0.05)
        await log_lines(api.store, execution_id, epoch, "hello")
        followed = [e async for e in client.events(execution_id, follow=False)]
        assert [e.type for e in followed] == ["flow:started", "flow:paused", "flow:resumed", "log"]
        assert followed == await api.store.get_events(execution_id)

        async def finish_later() -> None:
            await asyncio.sleep(0.1)
            await complete(api.store, execution_id, epoch)

        finishing = asyncio.create_task(finish_later())
        live = [e.index async for e in client.events(execution_id, from_index=2)]
        await finishing
        assert live == [2, 3, 4]
        assert (await client.wait(execution_id, timeout=5)).status is ExecutionStatus.COMPLETED
        assert await client.result(execution_id) == {"ok": 1}
        ids = await client.create_many("f", [{}, {"integration": {"b": 2}}], start=False)
        assert len(ids) == 2
        await client.stop(ids[0], "no")
        assert (await client.get(ids[0])).error_message == "no"


async def test_the_http_client_raises_the_database_clients_errors(api: Api) -> None:
    async with HttpClient(api.base_url, api.tokens["alice"]) as client:
        execution_id = await client.create("f", start=False)
        with pytest.raises(ExecutionNotFound) as missing:
            await client.get("nope")
        assert missing.value.execution_id == "nope"
        with pytest.raises(InvalidTransition) as refused:
            await client.resume(execution_id)
        assert refused.value.current is ExecutionStatus.CREATED
        with pytest.raises(InvalidTransition):
            await client.retry(execution_id)
        with pytest.raises(ValidationError):
            await client.create("")
        with pytest.raises(InvalidItem) as bad_item:
            await client.create_many("f", [{}, {"options": {"x": 1}}])
        assert bad_item.value.index == 1
        with pytest.raises(ApiRefused) as forbidden:
            await client.create("f", owner_id="bob")
        assert forbidden.value.status == 403
        with pytest.raises(ExecutionNotFound):
            [e async for e in client.events("nope")]
    async with HttpClient(api.base_url, "fxt_wrong") as stranger:
        with pytest.raises(ApiRefused) as unauthorized:
            await stranger.get(execution_id)
        assert unauthorized.value.status == 401
    with free_loopback_socket() as unused:
        port = unused.getsockname()[1]
    async with HttpClient(f"http://127.0.0.1:{port}", "t") as nowhere:
        with pytest.raises(StoreUnavailable, match="cannot reach"):
            await nowhere.get("x")


async def test_events_resume_exactly_once_when_the_server_restarts(api: Api) -> None:
    """A rolling restart cuts the stream; the client reconnects from the next index."""
    sock = free_loopback_socket()
    port = sock.getsockname()[1]

    def server() -> uvicorn.Server:
        app = create_app(api.store, settings=TEST_SETTINGS)
        return uvicorn.Server(
            uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=0)
        )

    first = server()
    serving = asyncio.create_task(first.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not first.started:
            await asyncio.sleep(0.01)
    async with HttpClient(f"http://127.0.0.1:{port}", api.tokens["alice"]) as client:
        execution_id = await client.create("f")
        epoch = await claim(api.store, execution_id)
        seen: list[int] = []
        second: uvicorn.Server | None = None
        restarted: asyncio.Task[None] | None = None
        async with asyncio.timeout(30):
            async for event in client.events(execution_id):
                seen.append(event.index)
                if event.index == 0:
                    await log_lines(api.store, execution_id, epoch, "before")
                elif event.index == 1:
                    first.should_exit = True
                    await serving
                    await log_lines(api.store, execution_id, epoch, "while down")
                    second = server()
                    again = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    again.bind(("127.0.0.1", port))  # the same address, as a restart has
                    restarted = asyncio.create_task(second.serve(sockets=[again]))
                elif event.index == 2:
                    await complete(api.store, execution_id, epoch)
        assert seen == [0, 1, 2, 3]
    assert second is not None and restarted is not None
    second.should_exit = True
    await restarted
