"""Bad input through the store API, the Client and the CLI on both backends: every refusal is
a typed error from `flowexec.errors`, and every table is unchanged byte for byte afterwards.

Hypothesis draws the values: text with NUL characters and lone surrogates, NaN and
infinities, types JSON does not have, integers too long to write, nesting past the limit,
each hidden somewhere inside an otherwise good value. A store is opened once per backend and
seeded with one running execution, so that every write below would otherwise succeed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flowexec import (
    Completion,
    ExecutionStatus,
    FlowexecError,
    UpdateExecutionStatusParams,
    ValidationError,
    new_execution,
    open_store,
)
from flowexec.cli import app
from flowexec.model import MAX_ID_LENGTH, MAX_JSON_DEPTH, Execution
from flowexec.runtime import Client
from flowexec.store.protocol import ExecutionStore
from tests.conftest import drop_prefixed_tables

from .snapshots import snapshot

EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WORKER = "hardening-worker"
LEASE_MS = 600_000

UNSTORABLE = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc80", "\udfff"])
bad_text = st.builds(
    lambda before, bad, after: before + bad + after,
    st.text(max_size=8),
    UNSTORABLE,
    st.text(max_size=8),
)
"""Text neither backend can store alike: a NUL or a lone surrogate somewhere in it."""


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


bad_leaf = st.one_of(
    bad_text,
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.builds(tuple, st.lists(st.integers(), max_size=2)),
    st.builds(frozenset, st.lists(st.integers(), max_size=2)),
    st.binary(max_size=4),
    st.builds(object),
    st.builds(lambda k: {k: 1}, st.integers() | st.none()),
    st.builds(lambda k: {k: 1}, bad_text),
    st.just(10**5000),
    st.integers(MAX_JSON_DEPTH + 1, 20_000).map(_deep),
)
"""One value no JSON column may take."""


def _bury(leaf: Any, path: list[str], key: str) -> Any:
    for container in path:
        leaf = [1, leaf] if container == "list" else {key: leaf, "other": None}
    return leaf


bad_json = st.builds(
    _bury,
    bad_leaf,
    st.lists(st.sampled_from(["list", "dict"]), max_size=4),
    st.text(max_size=6),
)
"""A bad value somewhere inside good arrays and objects."""

bad_id = st.one_of(
    bad_text.filter(bool),
    st.text(min_size=MAX_ID_LENGTH + 1, max_size=MAX_ID_LENGTH + 40),
    st.sampled_from(["", " padded", "tab\there", "new\nline"]),
    st.integers(),
    st.none(),
)


@dataclasses.dataclass
class Seeded:
    """A store, and one execution it is running under a live lease."""

    store: ExecutionStore
    template: Execution
    running: Execution
    epoch: int


class Harness:
    """One store on its own event loop, driven from synchronous Hypothesis tests."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.runner = asyncio.Runner()
        self.seeded = self.runner.run(self._seed())

    async def _seed(self) -> Seeded:
        store = await open_store(self.url, table_prefix=self.prefix)
        running = new_execution("bad-input", "owner")
        await store.create(running)
        batch = await store.claim_and_start(WORKER, LEASE_MS, limit=1)
        [started] = batch.started
        template = new_execution("bad-input", "owner", integration={"fine": [1, 2.5, "x"]})
        return Seeded(store, template, started.execution, started.claim.epoch)

    def assert_refused(self, call: Callable[[Seeded], Awaitable[Any]]) -> FlowexecError:
        before = snapshot(self.url, self.prefix)
        with pytest.raises(FlowexecError) as refused:
            self.runner.run(call(self.seeded))
        assert snapshot(self.url, self.prefix) == before
        return refused.value

    def close(self) -> None:
        self.runner.run(self.seeded.store.close())
        self.runner.close()


@pytest.fixture
def harness(backend: str, store_url: str, unique_prefix: str) -> Iterator[Harness]:
    harness = Harness(store_url, unique_prefix)
    try:
        yield harness
    finally:
        harness.close()
        if backend == "postgres":
            drop_prefixed_tables(store_url, unique_prefix)


def _fenced(s: Seeded, **fields: Any) -> UpdateExecutionStatusParams:
    return UpdateExecutionStatusParams(
        execution_id=s.running.id, worker_id=WORKER, epoch=s.epoch, **fields
    )


JSON_WRITES: dict[str, Callable[[Seeded, Any], Awaitable[Any]]] = {
    "create integration": lambda s, bad: s.store.create(
        dataclasses.replace(s.template, integration={"payload": bad})
    ),
    "create event payload": lambda s, bad: s.store.create(
        dataclasses.replace(s.template, external_events=[{"event_name": "e", "payload": bad}])
    ),
    "status result": lambda s, bad: s.store.update_execution_status(
        _fenced(s, status=ExecutionStatus.COMPLETED, result=bad)
    ),
    "completion result": lambda s, bad: s.store.claim_and_start(
        WORKER, LEASE_MS, limit=1, complete=[Completion(s.running.id, s.epoch, bad)]
    ),
}

TEXT_WRITES: dict[str, Callable[[Seeded, str], Awaitable[Any]]] = {
    "error_message": lambda s, bad: s.store.update_execution_status(
        _fenced(s, status=ExecutionStatus.FAILED, error_message=bad)
    ),
    "retry reason": lambda s, bad: s.store.retry_execution(
        s.running.id, worker_id=WORKER, epoch=s.epoch, reason=bad
    ),
    "failure reason": lambda s, bad: s.store.update_failure_info(s.running.id, 1, bad),
    "recovery reason": lambda s, bad: s.store.record_recovery(s.running.id, WORKER, bad),
}

ID_CALLS: dict[str, Callable[[Seeded, Any], Awaitable[Any]]] = {
    "get": lambda s, bad: s.store.get(bad),
    "start": lambda s, bad: s.store.start_execution(bad),
    "claim": lambda s, bad: s.store.claim_execution(bad, WORKER, LEASE_MS),
    "children": lambda s, bad: s.store.get_child_executions(bad),
    "create id": lambda s, bad: s.store.create(
        dataclasses.replace(s.template, id=bad, root_execution_id=bad)
    ),
    "create owner": lambda s, bad: s.store.create(dataclasses.replace(s.template, owner_id=bad)),
    "claim worker": lambda s, bad: s.store.claim_next(bad, LEASE_MS),
    "extend worker": lambda s, bad: s.store.extend_claims(bad, [(s.running.id, s.epoch)], 1000),
}


@EXAMPLES
@given(bad=bad_json, write=st.sampled_from(sorted(JSON_WRITES)))
def test_bad_json_is_refused_before_any_write(harness: Harness, bad: Any, write: str) -> None:
    error = harness.assert_refused(lambda s: JSON_WRITES[write](s, bad))
    assert isinstance(error, ValidationError), error
    assert "\n" not in str(error)


@EXAMPLES
@given(bad=bad_text, write=st.sampled_from(sorted(TEXT_WRITES)))
def test_unstorable_text_is_refused_before_any_write(
    harness: Harness, bad: str, write: str
) -> None:
    error = harness.assert_refused(lambda s: TEXT_WRITES[write](s, bad))
    assert isinstance(error, ValidationError), error
    assert "contains a" in str(error)


@EXAMPLES
@given(bad=bad_id, call=st.sampled_from(sorted(ID_CALLS)))
def test_bad_ids_are_refused_before_any_write(harness: Harness, bad: Any, call: str) -> None:
    error = harness.assert_refused(lambda s: ID_CALLS[call](s, bad))
    assert isinstance(error, ValidationError), error


@pytest.mark.parametrize("timeout", ["abc", "5", float("nan"), float("inf"), -1, None, [1]])
def test_wait_for_work_takes_seconds_only(harness: Harness, timeout: Any) -> None:
    error = harness.assert_refused(lambda s: s.store.wait_for_work(timeout))
    assert isinstance(error, ValidationError)
    assert "timeout_s" in str(error)


def test_messages_never_quote_the_payload(harness: Harness) -> None:
    secret = "sk-live-0123456789"
    for bad in ({"api_key": secret + "\x00"}, {"api_key": secret, "n": float("nan")}):
        error = harness.assert_refused(lambda s, bad=bad: JSON_WRITES["status result"](s, bad))
        assert secret not in str(error) and "api_key" not in str(error)
    error = harness.assert_refused(lambda s: TEXT_WRITES["error_message"](s, secret + "\x00"))
    assert secret not in str(error)


CLIENT_CALLS: dict[str, Callable[[Client, Seeded, Any], Awaitable[Any]]] = {
    "integration": lambda c, s, bad: c.create("bad-input", owner_id="o", integration={"k": bad}),
    "event payload": lambda c, s, bad: c.create(
        "bad-input", owner_id="o", events=[{"event_name": "e", "payload": bad}]
    ),
}


@EXAMPLES
@given(bad=bad_json, call=st.sampled_from(sorted(CLIENT_CALLS)))
def test_the_client_refuses_bad_json_before_any_write(
    harness: Harness, bad: Any, call: str
) -> None:
    client = Client(harness.seeded.store)
    error = harness.assert_refused(lambda s: CLIENT_CALLS[call](client, s, bad))
    assert isinstance(error, ValidationError), error


@EXAMPLES
@given(bad=bad_text)
def test_the_client_refuses_unstorable_reasons_and_owners(harness: Harness, bad: str) -> None:
    client = Client(harness.seeded.store)
    harness.assert_refused(lambda s: client.stop(s.running.id, reason=bad))
    harness.assert_refused(lambda s: client.create("bad-input", owner_id=bad))


CLI_BAD_INPUTS = [
    ["submit", "bad-input", "--owner", "o", "--integration", '{"k": "nul\\u0000"}'],
    ["submit", "bad-input", "--owner", "o", "--integration", '{"k": "\\udfff"}'],
    ["submit", "bad-input", "--owner", "o", "--integration", "[" * 3000 + "]" * 3000],
    ["submit", "bad-input", "--owner", "o", "--event", 'e={"n": NaN}'],
    ["submit", "bad-input", "--owner", "bad\udcff"],
    ["stop", "bad\udcff"],
    ["stop", "RUNNING", "--reason", "r\x00"],
    ["pause", "a\x00b"],
]


@pytest.mark.parametrize("args", CLI_BAD_INPUTS, ids=range(len(CLI_BAD_INPUTS)))
def test_the_cli_refuses_bad_input_before_any_write(harness: Harness, args: list[str]) -> None:
    args = [harness.seeded.running.id if a == "RUNNING" else a for a in args]
    before = snapshot(harness.url, harness.prefix)
    result = CliRunner().invoke(
        app,
        ["--database-url", harness.url, "--table-prefix", harness.prefix, *args],
        env={"FLOWEXEC_DATABASE_URL": None, "NO_COLOR": "1"},
    )
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert snapshot(harness.url, harness.prefix) == before
