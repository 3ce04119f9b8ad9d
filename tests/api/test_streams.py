"""Server-Sent Events: ids are indexes, `Last-Event-ID` resumes exactly once across a
disconnect, the stream ends after the terminal event, keep-alives while idle, a cap per token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.conftest import POOLED_ROUTES

from .conftest import TEST_SETTINGS, Api
from .runs import claim, complete, log_lines

SSE = {"Accept": "text/event-stream"}


@pytest.fixture(params=POOLED_ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    """The HTTP API and the event log's subscriptions through a transaction pooler too."""
    return str(request.param)


@asynccontextmanager
async def stream(
    http: httpx.AsyncClient, execution_id: str, last_event_id: int | None = None
) -> AsyncIterator[httpx.Response]:
    headers = dict(SSE)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with http.stream("GET", f"/executions/{execution_id}/events", headers=headers) as resp:
        yield resp


async def messages(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Each SSE message as its fields; a comment line comes as {"comment": ...}."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            yield fields
            fields = {}


async def test_last_event_id_resumes_exactly_once_and_the_stream_ends_at_the_end(
    api: Api,
) -> None:
    async with api.client() as http:
        execution_id = (await http.post("/executions", json={"flow_id": "f"})).json()["id"]
        epoch = await claim(api.store, execution_id)
        await log_lines(api.store, execution_id, epoch, "a", "b", "c")
        first: list[int] = []
        async with stream(http, execution_id) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            async for message in messages(response):
                if "id" in message:
                    first.append(int(message["id"]))
                if len(first) == 2:
                    break  # the client goes away mid-stream
        assert first == [0, 1]
        await log_lines(api.store, execution_id, epoch, "d", "e")
        resumed: list[dict[str, object]] = []
        ended = False
        async with stream(http, execution_id, last_event_id=first[-1]) as response:
            async for message in messages(response):
                if "id" in message:
                    event = json.loads(message["data"])
                    assert event["index"] == int(message["id"])
                    resumed.append(event)
                    if event["index"] == 5:
                        await complete(api.store, execution_id, epoch)
                elif message.get("event") == "end":
                    ended = True
        assert ended, "an end event closes the stream"
        assert first + [e["index"] for e in resumed] == list(range(7))
        assert [e["type"] for e in resumed] == ["log"] * 4 + ["flow:completed"]
        async with stream(http, execution_id, last_event_id=6) as response:
            assert response.status_code == 204, "nothing is left: an EventSource stops"


async def test_an_idle_stream_gets_keep_alive_comments(api: Api) -> None:
    async with api.client() as http:
        execution_id = (await http.post("/executions", json={"flow_id": "f"})).json()["id"]
        await claim(api.store, execution_id)
        seen: list[dict[str, str]] = []
        async with asyncio.timeout(20 * TEST_SETTINGS.keepalive_s + 10):
            async with stream(http, execution_id) as response:
                async for message in messages(response):
                    seen.append(message)
                    if "comment" in message:
                        break
        assert seen[0]["id"] == "0"
        assert seen[-1] == {"comment": "keep-alive"}


async def test_streams_per_token_are_capped_and_a_closed_one_frees_its_slot(api: Api) -> None:
    async with api.client() as http, api.client("bob") as bob:
        execution_id = (await http.post("/executions", json={"flow_id": "f"})).json()["id"]
        await claim(api.store, execution_id)
        bobs = (await bob.post("/executions", json={"flow_id": "f"})).json()["id"]
        await claim(api.store, bobs)
        async with stream(http, execution_id) as one, stream(http, execution_id) as two:
            assert (one.status_code, two.status_code) == (200, 200)
            async with stream(http, execution_id) as three:
                assert three.status_code == 429
                await three.aread()
                assert three.json()["type"] == "urn:flowexec:problem:too-many-streams"
            async with stream(bob, bobs) as other_token:
                assert other_token.status_code == 200
        async with asyncio.timeout(10):
            while True:  # the server frees a slot when it notices the client left
                async with stream(http, execution_id) as again:
                    if again.status_code == 200:
                        break
                await asyncio.sleep(0.05)
