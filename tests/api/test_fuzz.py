"""Property-based fuzzing of the whole API from its OpenAPI document (schemathesis), against a
real server on loopback, with input the document allows and input it does not: no 500, and
every response matches the document."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from flowexec import open_store
from flowexec.api import API_PREFIX, create_app

from .conftest import TEST_SETTINGS, free_loopback_socket

EXAMPLES_PER_OPERATION = 10
"""Per operation and mode (valid and invalid input); bounded, so the run takes seconds."""


async def _admin_token(url: str) -> str:
    async with await open_store(url) as store:
        return (await store.create_token("fuzz", admin=True)).bearer


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'api.db'}"
    token = asyncio.run(_admin_token(url))
    sock = free_loopback_socket()
    server = uvicorn.Server(
        uvicorn.Config(create_app(url, settings=TEST_SETTINGS), log_config=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started:
                break
            thread.join(0.01)
        assert server.started, "the server did not start"
        host, port = sock.getsockname()
        schema = schemathesis.openapi.from_url(f"http://{host}:{port}{API_PREFIX}/openapi.json")
        schema.config.headers = {"Authorization": f"Bearer {token}"}
        yield schema
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _takes_checked_input(operation: schemathesis.APIOperation) -> bool:
    """Has query parameters or a body the document constrains (any string is a valid id)."""
    return bool(len(operation.query) or len(operation.body))


def test_no_input_makes_the_api_fail_or_break_its_document(
    api_schema: schemathesis.BaseSchema,
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15, "every endpoint is in the document"
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for operation, mode in itertools.product(operations, modes):
        if mode is GenerationMode.NEGATIVE and not _takes_checked_input(operation):
            continue  # nothing the document forbids

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS, timeout=10)

        fuzz()
