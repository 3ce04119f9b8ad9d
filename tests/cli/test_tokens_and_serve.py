"""`flowexec tokens` and `flowexec serve`: tokens printed once and stored hashed, a server that
refuses to start open to the network, and a real `serve` process answering with a token."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import httpx
from tests.api.conftest import free_loopback_socket
from tests.cli.conftest import Cli, assert_one_line_error

from flowexec import open_store
from flowexec.store.protocol import ExecutionStore


async def test_tokens_create_list_and_revoke(cli: Cli, store: ExecutionStore) -> None:
    created = await cli.ok("tokens", "create", "--owner", "alice", "--name", "ci")
    bearer = created.stdout.strip()
    assert bearer.startswith("fxt_") and "shown once" in created.stderr
    assert (await store.authenticate(bearer)) is not None
    admin = await cli.json("tokens", "create", "--owner", "ops", "--admin")
    assert admin["admin"] is True and admin["token"].startswith("fxt_")
    listed = await cli.json("tokens", "ls")
    assert [(t["name"], t["owner_id"]) for t in listed] == sorted(
        [("ci", "alice"), (admin["name"], "ops")]
    )
    table = (await cli.ok("tokens", "ls")).stdout
    assert "ci" in table and bearer not in table
    assert_one_line_error(
        await cli("tokens", "create", "--owner", "bob", "--name", "ci"), 2, "'ci' exists"
    )
    await cli.ok("tokens", "revoke", "ci")
    assert (await store.authenticate(bearer)) is None
    assert_one_line_error(await cli("tokens", "revoke", "ci"), 1, "no token is named 'ci'")


async def test_serve_refuses_to_start_without_tokens_or_insecurely_on_the_network(
    cli: Cli,
) -> None:
    assert_one_line_error(await cli("serve"), 2, "no API tokens exist", "--insecure-no-auth")
    assert_one_line_error(
        await cli("serve", "--insecure-no-auth", "--host", "0.0.0.0"), 2, "loopback"
    )


async def test_a_serve_process_answers_with_a_token_and_stops_on_sigterm(
    cli: Cli, store: ExecutionStore
) -> None:
    # uvicorn shuts down gracefully, then ends by the signal it was sent
    await _serve_and_stop(cli, store, [], exit_code=-signal.SIGTERM)


async def test_serve_with_several_processes(tmp_path: Path) -> None:
    """Each `--workers` process builds its app from the environment its parent set."""
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    cli = Cli(url, "flowexec_")
    async with await open_store(url) as store:
        await _serve_and_stop(cli, store, ["--workers", "2"], exit_code=0)


async def _serve_and_stop(
    cli: Cli, store: ExecutionStore, options: list[str], *, exit_code: int
) -> None:
    bearer = (await store.create_token("alice")).bearer
    with free_loopback_socket() as probe:
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowexec", *cli.global_args(), "serve", "--port", str(port),
        "--shutdown-grace", "1", *options,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        async with httpx.AsyncClient(base_url=base) as http, asyncio.timeout(30):
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            headers = {"Authorization": f"Bearer {bearer}"}
            created = await http.post("/executions", json={"flow_id": "f"}, headers=headers)
            assert created.status_code == 201
            flows = (await http.get("/flows", headers=headers)).json()["items"]
            assert [f["flow_id"] for f in flows] == ["f"]
            # an open event stream does not hold the server up past its grace period
            events = f"/executions/{created.json()['id']}/events"
            sse = {**headers, "Accept": "text/event-stream"}
            async with http.stream("GET", events, headers=sse, timeout=30) as stream:
                assert stream.status_code == 200
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(httpx.TransportError):
                    await stream.aread()
        async with asyncio.timeout(30):
            assert await process.wait() == exit_code
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()
