"""`FlowContext`: what a flow sees of its execution, and how it runs nodes and emits children.

Node boundaries are where the execution's controls act (docs/architecture.md §7): a pause or a
breakpoint holds the run before a node starts, `max_concurrency` bounds nodes in flight,
`node_timeout_ms` bounds each node. Nodes already running when a pause arrives finish undisturbed.
Nodes, children, breakpoints and `log` lines are recorded in the execution's event log, through
the worker's buffer (runtime/event_buffer.py). Completed nodes are recorded and replayed by a
later attempt, sleeps and waits for children give the claim back (runtime/steps.py, §11).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, overload

from flowexec.errors import (
    DepthLimitExceeded,
    Fail,
    InvalidTransition,
    NodeTimeout,
)
from flowexec.model import (
    JSON,
    MAX_REASON_LENGTH,
    EventType,
    Execution,
    ExecutionOptions,
    ExecutionStatus,
    NewEvent,
    check_event_data,
    check_id,
    check_json,
    check_text,
    new_execution,
)
from flowexec.runtime.child_ids import child_execution_id, emit_identity, keyed_identity
from flowexec.runtime.control import RunControl
from flowexec.runtime.events import FlowEvent, make_event
from flowexec.runtime.lease import Lease
from flowexec.runtime.logs import BoundLogger
from flowexec.runtime.steps import DurableSteps
from flowexec.runtime.tracing import node_span, with_trace_context

P = ParamSpec("P")
T = TypeVar("T")


class FlowLog(BoundLogger):
    """`ctx.log`: the run's logger, and when called, a `log` event in the event log."""

    def __init__(self, log: BoundLogger, lease: Lease) -> None:
        super().__init__(log.logger, log.fields)
        self._lease = lease

    def __call__(self, message: str, **fields: JSON) -> None:
        """Record a progress line of the flow's own; `fields` must be JSON (ValidationError)."""
        data = check_event_data({**fields, "message": check_text(message, "message")}, "fields")
        self._lease.record(EventType.LOG, data)


class FlowContext:
    """Handed to every flow run; one per attempt."""

    def __init__(
        self,
        execution: Execution,
        *,
        lease: Lease,
        control: RunControl,
        log: BoundLogger,
        check_flow: Callable[[str], object],
        max_depth: int,
        checkpoint: bool = True,
    ) -> None:
        self._execution = execution
        self._lease = lease
        self._control = control
        self._check_flow = check_flow
        self._max_depth = max_depth
        self._steps = DurableSteps(lease, enabled=checkpoint)
        self.log = FlowLog(log, lease)
        """Call it, `ctx.log("message", **fields)`, to record a `log` event in the execution's
        event log; it is also the run's logger (`ctx.log.info(...)`)."""
        limits = execution.options.execution if execution.options else None
        self._node_timeout_ms = limits.node_timeout_ms if limits else None
        self._slots = (
            asyncio.Semaphore(limits.max_concurrency)
            if limits and limits.max_concurrency
            else None
        )
        options = execution.options
        self._breakpoints = (
            frozenset(options.breakpoints or ())
            if options is not None and options.debug
            else frozenset()
        )
        self._emits: Counter[tuple[str, str, str]] = Counter()
        self._node_errors: list[tuple[BaseException, str]] = []
        self.interrupted_node: str | None = None
        """The node that was running when the run was cancelled (e.g. by the flow timeout)."""

    # ------------------------------------------------------------ what the flow sees

    @property
    def execution(self) -> Execution:
        """The execution as it was when this attempt started."""
        return self._execution

    @property
    def execution_id(self) -> str:
        return self._execution.id

    @property
    def flow_id(self) -> str:
        return self._execution.flow_id

    @property
    def worker_id(self) -> str:
        return self._lease.worker_id

    @property
    def options(self) -> ExecutionOptions | None:
        return self._execution.options

    @property
    def integration(self) -> dict[str, JSON]:
        """The execution's integration settings; `{}` when it has none, so `.get` always works."""
        return self._execution.integration or {}

    @property
    def events(self) -> list[FlowEvent]:
        return [FlowEvent.from_json(e) for e in self._execution.external_events or []]

    @property
    def event(self) -> FlowEvent | None:
        """The event that triggered this execution: set for children, `None` for a plain root."""
        events = self.events
        return events[0] if events else None

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 after one counted failure, and so on."""
        return self._execution.failure_count + 1

    # ------------------------------------------------------------ nodes

    @overload
    async def node(
        self,
        node_id: str,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        checkpoint: bool | None,
        **kwargs: Any,
    ) -> T: ...

    @overload
    async def node(
        self, node_id: str, fn: Callable[..., T], *args: Any, checkpoint: bool | None, **kwargs: Any
    ) -> T: ...

    @overload
    async def node(
        self, node_id: str, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    @overload
    async def node(
        self, node_id: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    async def node(
        self,
        node_id: str,
        fn: Callable[..., Any],
        *args: Any,
        checkpoint: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Run `fn(*args, **kwargs)` as the node `node_id`; sync functions run in a thread.

        Node ids are unique within the execution (a second use is a `ValidationError`). With
        `checkpoint` (the flow's default, itself on unless `@app.flow(checkpoint=False)`), the
        node's result must be JSON and is recorded before this returns; when the execution
        runs again, a recorded node returns its recorded result without calling `fn`.
        A node that raises or times out is remembered as the failing node of the run
        (`error_node_id`), and its exception reaches the flow unchanged (`NodeTimeout` for a
        timeout) so that the flow may handle it. A thread cannot be interrupted: when a sync
        node times out or its run is cancelled, the flow moves on and the thread finishes
        in the background.
        """
        check_id(node_id, "node_id")
        self._steps.use(node_id)
        durable = self._steps.enabled if checkpoint is None else bool(checkpoint)
        if durable:
            found, result = await self._steps.replayed(node_id)
            if found:
                return result
        await self._boundary(node_id)
        if self._slots is None:
            return await self._run_node(node_id, fn, args, kwargs, durable)
        async with self._slots:
            await self._control.wait_resumed()
            return await self._run_node(node_id, fn, args, kwargs, durable)

    async def sleep(self, seconds: float) -> None:
        """Sleep; a sleep over `DURABLE_SLEEP_AFTER_S` (1 s) gives the claim back and the
        execution runs again at the wake-up time, replaying its recorded nodes up to here.
        Each sleep is a step (`sleep#1`, `sleep#2`, ... in the event log). In a flow with
        `checkpoint=False` every sleep holds the worker's slot."""
        await self._steps.sleep(seconds)

    async def wait_for_children(
        self,
        child_ids: Sequence[str],
        timeout: float | None = None,  # noqa: ASYNC109 - a durable deadline, kept across attempts
    ) -> list[Execution]:
        """The children's executions (status, result) once all are terminal, in the order
        given; `ExecutionTimeout` once `timeout` seconds passed since the wait first began.

        Children that take longer than a second do not hold a worker slot: the claim is given
        back and the execution looks again later (each look a re-run that replays its
        recorded nodes), so a worker whose slots are all waiting parents still runs the
        children. In a flow with `checkpoint=False` the wait holds the slot.
        """
        return await self._steps.wait_for_children(child_ids, timeout)

    async def _boundary(self, node_id: str) -> None:
        await self._control.wait_resumed()
        if node_id in self._breakpoints:
            await self._break_before(node_id)

    async def _break_before(self, node_id: str) -> None:
        """Pause the execution (visible in the store) and hold until a client resumes it."""
        self._control.pause()
        self._lease.record(EventType.BREAKPOINT_HIT, {"node_id": node_id})
        try:
            with self._control.writing_status():
                await self._lease.set_status(ExecutionStatus.PAUSED)
        except InvalidTransition as exc:
            if exc.current != ExecutionStatus.PAUSED.value:
                raise  # stopped or taken elsewhere: the worker's poll ends this run
        self.log.info("paused at breakpoint before node %s", node_id, extra={"node_id": node_id})
        await self._control.wait_resumed()
        self.log.info("resumed at breakpoint %s", node_id, extra={"node_id": node_id})

    async def _run_node(
        self,
        node_id: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        durable: bool,
    ) -> Any:
        self._lease.record(EventType.NODE_STARTED, {"node_id": node_id})
        began = time.monotonic()
        try:
            with node_span(self._execution, node_id):
                result = await self._call_with_timeout(node_id, fn, args, kwargs)
            if durable:
                check_json(result, f"the result of node {node_id!r}")
        except asyncio.CancelledError:
            self.interrupted_node = node_id
            raise
        except Exception as exc:
            if isinstance(exc, Fail) and exc.node_id is None:
                exc.node_id = node_id
            self._node_errors.append((exc, node_id))
            self._lease.record(
                EventType.NODE_FAILED,
                {"node_id": node_id, "duration_ms": _since(began), "type": type(exc).__name__,
                 "message": str(exc)[:MAX_REASON_LENGTH]},
            )
            raise
        completed: dict[str, JSON] = {"node_id": node_id, "duration_ms": _since(began)}
        if durable:
            await self._steps.record(NewEvent(EventType.NODE_COMPLETED, completed), node_id, result)
        else:
            self._lease.record(EventType.NODE_COMPLETED, completed)
        return result

    async def _call_with_timeout(
        self,
        node_id: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        timeout_ms = self._node_timeout_ms
        if timeout_ms is None:
            return await _call(fn, args, kwargs)
        try:
            async with asyncio.timeout(timeout_ms / 1000) as deadline:
                return await _call(fn, args, kwargs)
        except TimeoutError:
            if deadline.expired():
                raise NodeTimeout(node_id, timeout_ms) from None
            raise

    def failing_node(self, exc: BaseException) -> str | None:
        """The node an exception came from: itself or anything in its cause/context chain."""
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(current, Fail) and current.node_id is not None:
                return current.node_id
            for error, node_id in self._node_errors:
                if error is current:
                    return node_id
            current = current.__cause__ or current.__context__
        return None

    # ------------------------------------------------------------ children

    async def emit(
        self,
        event_name: str,
        payload: JSON = None,
        *,
        flow_id: str | None = None,
        key: str | None = None,
        priority: int | None = None,
    ) -> str:
        """Spawn a child execution triggered by this event; returns the child's id.

        The child runs `flow_id` (default: this flow) with this execution's owner, options,
        integration and priority (unless `priority` is given). Its id comes from the emit's
        content (or from `key`, when given), so a re-run of this execution re-creates the same
        children instead of duplicating them.
        A `key` reused with other content raises `ExecutionExists` (nothing is overwritten).
        """
        event = make_event(event_name, payload)
        target = self.flow_id if flow_id is None else check_id(flow_id, "flow_id")
        self._check_flow(target)
        depth = self._execution.execution_depth
        if depth + 1 > self._max_depth:
            raise DepthLimitExceeded(self.execution_id, depth, self._max_depth)
        if key is not None:
            identity = keyed_identity(check_id(key, "key"))
        else:
            payload_json = check_json(event.payload, "payload")
            content = (target, event.name, payload_json)
            self._emits[content] += 1
            identity = emit_identity(*content, self._emits[content])
        child = new_execution(
            target,
            self._execution.owner_id,
            parent=self._execution,
            options=self._execution.options,
            integration=self._execution.integration,
            external_events=[with_trace_context(event.to_json())],
            id=child_execution_id(self.execution_id, *identity),
            max_depth=self._max_depth,
            priority=priority,
        )
        await self._lease.create_child(child)
        self._lease.record(
            EventType.CHILD_SPAWNED,
            {"child_id": child.id, "event_name": event.name, "flow_id": target},
        )
        self.log.debug("emitted %s as %s", event.name, child.id)
        return child.id


def _since(began: float) -> int:
    return round((time.monotonic() - began) * 1000)


async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if _is_async(fn):
        return await fn(*args, **kwargs)
    result = await asyncio.to_thread(functools.partial(fn, *args, **kwargs))
    if inspect.isawaitable(result):
        return await result
    return result


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with an async __call__
    )
