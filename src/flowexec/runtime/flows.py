"""The registry of flows: what a worker can run and a client may create.

A flow is an `async def f(ctx: FlowContext)` registered under a `flow_id`; its JSON return value
becomes the execution's result. Workers claim only the flows their registry holds. The
registry depends on neither the worker nor the client: both depend on it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flowexec.errors import ConfigError, FlowNotFound, ValidationError
from flowexec.model import JSON, check_id, check_int_range
from flowexec.runtime.context import FlowContext
from flowexec.runtime.schedules import DEFAULT_SCHEDULE_OWNER, MissedSlots, Schedule
from flowexec.store.scheduling import MAX_RUNNING_LIMIT

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
    max_running: int | None = None
    """At most this many executions of the flow run at once, across all workers."""

    @property
    def max_failures(self) -> int:
        """Failed attempts after which the execution is `failed`: the first run plus retries."""
        return self.max_retries + 1


class FlowRegistry:
    def __init__(self) -> None:
        self._flows: dict[str, FlowSpec] = {}
        self._schedules: dict[str, Schedule] = {}

    def flow(
        self,
        flow_id: str,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        checkpoint: bool = True,
        max_running: int | None = None,
    ) -> Callable[[F], F]:
        """Decorator: register an `async def f(ctx)` as the flow `flow_id`. With
        `checkpoint=False` its nodes run again on every attempt unless a node asks otherwise."""

        def register(fn: F) -> F:
            self.register(
                flow_id, fn, max_retries=max_retries, checkpoint=checkpoint,
                max_running=max_running,
            )
            return fn

        return register

    def register(
        self,
        flow_id: str,
        fn: FlowFunction,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        checkpoint: bool = True,
        max_running: int | None = None,
    ) -> FlowSpec:
        check_id(flow_id, "flow_id")
        if not isinstance(checkpoint, bool):
            raise ValidationError(
                f"checkpoint must be True or False, not {type(checkpoint).__name__}"
            )
        check_int_range(max_retries, "max_retries", 0, MAX_RETRIES_LIMIT)
        if max_running is not None:
            check_int_range(max_running, "max_running", 1, MAX_RUNNING_LIMIT)
        if not inspect.iscoroutinefunction(fn):
            raise ValidationError(f"flow {flow_id!r} must be an async function (async def)")
        if flow_id in self._flows:
            raise ConfigError(f"flow {flow_id!r} is already registered")
        spec = FlowSpec(flow_id, fn, max_retries, checkpoint, max_running)
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

    @property
    def running_limits(self) -> dict[str, int]:
        """`max_running` of each flow that declares one."""
        return {
            f.flow_id: f.max_running for f in self._flows.values() if f.max_running is not None
        }

    def schedule(
        self,
        cron: str,
        *,
        flow_id: str,
        schedule_id: str | None = None,
        owner_id: str = DEFAULT_SCHEDULE_OWNER,
        integration: Mapping[str, JSON] | None = None,
        timezone: str = "UTC",
        missed: MissedSlots | str = MissedSlots.LATEST,
        priority: int = 0,
    ) -> Callable[[F], F]:
        """Run `flow_id` at every slot of `cron` (in `timezone`), once per slot across all
        workers; `missed` says what to do with slots that came due while no worker ran.

        Call it, or use it as a decorator above `@app.flow(...)`; `schedule_id` (default
        `flow_id@cron`) names the schedule's slots in the database, so renaming it starts
        afresh.
        """
        spec = Schedule.checked(
            cron, flow_id=flow_id, schedule_id=schedule_id, owner_id=owner_id,
            integration=integration, timezone=timezone, missed=missed, priority=priority,
        )
        if spec.schedule_id in self._schedules:
            raise ConfigError(f"schedule {spec.schedule_id!r} is already declared")
        self._schedules[spec.schedule_id] = spec

        def unchanged(fn: F) -> F:
            return fn

        return unchanged

    @property
    def schedules(self) -> list[Schedule]:
        return [self._schedules[k] for k in sorted(self._schedules)]

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._flows
