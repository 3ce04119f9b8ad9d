"""Bad input at every runtime entry point: a typed error, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from flowexec import (
    App,
    ConfigError,
    FlowContext,
    FlowEvent,
    FlowNotFound,
    ValidationError,
    Worker,
)
from flowexec.store.protocol import ExecutionStore

from .helpers import OWNER, count_executions


def make_app() -> App:
    app = App()

    @app.flow("known")
    async def known(ctx: FlowContext) -> None:
        return None

    return app


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"flow_id": "unknown"}, FlowNotFound, "no flow is registered as 'unknown'"),
        ({"flow_id": ""}, ValidationError, "flow_id must not be empty"),
        ({"owner_id": ""}, ValidationError, "owner_id must not be empty"),
        ({"options": {"retries": 3}}, ValidationError, "unknown keys"),
        ({"options": {"execution": {"node_timeout_ms": -1}}}, ValidationError,
         "node_timeout_ms must be between"),
        ({"options": {"execution": {"max_concurrency": 0}}}, ValidationError, "max_concurrency"),
        ({"options": {"debug": "yes"}}, ValidationError, "debug must be true or false"),
        ({"options": {"breakpoints": "node-a"}}, ValidationError, "breakpoints"),
        ({"options": ["debug"]}, ValidationError, "options must be"),
        ({"integration": {"at": object()}}, ValidationError, "integration is not JSON"),
        ({"integration": {"n": float("nan")}}, ValidationError, "integration is not JSON"),
        ({"integration": [1, 2]}, ValidationError, "integration must be a dict"),
        ({"events": [{"payload": 1}]}, ValidationError, "no event_name"),
        ({"events": [{"event_name": "e", "payload": {1, 2}}]}, ValidationError,
         "payload is not JSON"),
        ({"events": [{"event_name": "e", "extra": 1}]}, ValidationError, "unknown keys"),
        ({"events": {"event_name": "e"}}, ValidationError, "events must be a list"),
        ({"events": ["e"]}, ValidationError, "must be a FlowEvent or a dict"),
    ],
)
async def test_create_refuses_bad_input_and_writes_nothing(
    store: ExecutionStore, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    client = await make_app().client(store)
    arguments: dict[str, Any] = {"flow_id": "known", "owner_id": OWNER, **kwargs}
    flow_id = arguments.pop("flow_id")
    with pytest.raises(error, match=match):
        await client.create(flow_id, **arguments)
    assert await count_executions(store) == 0


async def test_create_accepts_events_as_dicts_or_flow_events(store: ExecutionStore) -> None:
    client = await make_app().client(store)
    execution_id = await client.create(
        "known",
        owner_id=OWNER,
        events=[FlowEvent("a", {"x": 1}), {"event_name": "b"}],
        start=False,
    )
    created = await client.get(execution_id)
    assert created.external_events == [
        {"event_name": "a", "payload": {"x": 1}},
        {"event_name": "b", "payload": None},
    ]


async def test_a_client_without_an_app_accepts_any_flow_id(store: ExecutionStore) -> None:
    from flowexec import Client

    client = Client(store)
    execution_id = await client.create("handled-elsewhere", owner_id=OWNER, start=False)
    assert (await client.get(execution_id)).flow_id == "handled-elsewhere"


def test_flows_must_be_async_unique_and_sensibly_retried() -> None:
    app = App()

    def not_async(ctx: FlowContext) -> None:
        return None

    async def flow(ctx: FlowContext) -> None:
        return None

    with pytest.raises(ValidationError, match="must be an async function"):
        app.register("sync", not_async)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="max_retries"):
        app.register("negative", flow, max_retries=-1)
    with pytest.raises(ValidationError, match="flow_id"):
        app.register(" padded ", flow)
    app.register("once", flow)
    with pytest.raises(ConfigError, match="already registered"):
        app.register("once", flow)
    assert app.flow_ids == ["once"]
    with pytest.raises(FlowNotFound):
        app.get_flow("twice")


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1001}, "concurrency"),
        ({"claim_timeout_ms": 0}, "claim_timeout_ms"),
        ({"claim_timeout_ms": 1000, "heartbeat_interval_ms": 1000}, "heartbeat_interval_ms"),
        ({"shutdown_grace_s": -1}, "shutdown_grace_s"),
        ({"poll_interval_s": 0}, "poll_interval_s"),
        ({"control_interval_s": float("nan")}, "control_interval_s"),
        ({"retry_backoff_base_ms": 100, "retry_backoff_max_ms": 10}, "retry_backoff_max_ms"),
        ({"worker_id": ""}, "worker_id"),
        ({"recovery_max_failures": 0}, "recovery_max_failures"),
    ],
)
def test_worker_settings_are_checked(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Worker(make_app(), "sqlite:///unused.db", **settings)


def test_a_worker_needs_an_app_with_flows() -> None:
    with pytest.raises(ConfigError, match="registers no flows"):
        Worker(App(), "sqlite:///unused.db")
    with pytest.raises(ConfigError, match="needs an App"):
        Worker(object(), "sqlite:///unused.db")  # type: ignore[arg-type]
