"""The registry of flows: what a worker can run and a client may create.

A flow is an `async def f(ctx: FlowContext)` registered under a `flow_id`; its JSON return value
becomes the execution's result. Workers claim only the flows their registry holds. The
registry depends on neither the worker nor the client: both depend on it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flowexec.errors import ConfigError, FlowNotFound, ValidationError
from flowexec.model import check_id, check_int_range
from flowexec.runtime.context import FlowContext

FlowFunction = Callable[[FlowContext], Awaitable[Any]]
F = TypeVar("F", bound=FlowFunction)

MAX_RETRIES_LIMIT = 1000
DEFAULT_MAX_RETRIES = 3


@dataclass(frozen=True, slots=True)
class FlowSpec:
    flow_id: str
    fn: FlowFunction
    max_retries: int
    checkpoint: bool = True
    """Whether its nodes are recorded and replayed by default (docs/architecture.md §11)."""

    @property
    def max_failures(self) -> int:
        """Failed attempts after which the execution is `failed`: the first run plus retries."""
        return self.max_retries + 1


class FlowRegistry:
    def __init__(self) -> None:
        self._flows: dict[str, FlowSpec] = {}

    def flow(
        self, flow_id: str, *, max_retries: int = DEFAULT_MAX_RETRIES, checkpoint: bool = True
    ) -> Callable[[F], F]:
        """Decorator: register an `async def f(ctx)` as the flow `flow_id`. With
        `checkpoint=False` its nodes run again on every attempt unless a node asks otherwise."""

        def register(fn: F) -> F:
            self.register(flow_id, fn, max_retries=max_retries, checkpoint=checkpoint)
            return fn

        return register

    def register(
        self,
        flow_id: str,
        fn: FlowFunction,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        checkpoint: bool = True,
    ) -> FlowSpec:
        check_id(flow_id, "flow_id")
        if not isinstance(checkpoint, bool):
            raise ValidationError(
                f"checkpoint must be True or False, not {type(checkpoint).__name__}"
            )
        check_int_range(max_retries, "max_retries", 0, MAX_RETRIES_LIMIT)
        if not inspect.iscoroutinefunction(fn):
            raise ValidationError(f"flow {flow_id!r} must be an async function (async def)")
        if flow_id in self._flows:
            raise ConfigError(f"flow {flow_id!r} is already registered")
        spec = FlowSpec(flow_id, fn, max_retries, checkpoint)
        self._flows[flow_id] = spec
        return spec

    def get_flow(self, flow_id: str) -> FlowSpec:
        try:
            return self._flows[flow_id]
        except KeyError:
            raise FlowNotFound(flow_id) from None

    @property
    def flow_ids(self) -> list[str]:
        return sorted(self._flows)

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._flows
