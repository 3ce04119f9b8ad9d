"""`Client`: create executions and drive their lifecycle from any process.

Every command is one store call; the store enforces the lifecycle (docs/architecture.md §3),
so an illegal command raises `InvalidTransition` and changes nothing. Workers notice stop and
pause through their control poll, within a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Container, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from flowexec.closing import AsyncClosing
from flowexec.errors import (
    ExecutionNotFound,
    ExecutionTimeout,
    FlowNotFound,
    ValidationError,
)
from flowexec.model import (
    DEFAULT_TABLE_PREFIX,
    JSON,
    Execution,
    ExecutionEvent,
    ExecutionOptions,
    ExecutionStatus,
    ExecutionTreeNode,
    UpdateExecutionStatusParams,
    check_id,
    check_positive,
    new_execution,
)
from flowexec.runtime.events import FlowEvent, parse_events
from flowexec.runtime.stores import use_store
from flowexec.store.checks import check_sequence
from flowexec.store.protocol import ExecutionStore
from flowexec.store.subscription import follow_events

log = logging.getLogger("flowexec.client")

WAIT_FIRST_POLL_S = 0.02
WAIT_POLL_GROWTH = 1.5
"""`wait` polls quickly at first, then each pause is this much longer, up to the maximum."""
MAX_POLL_INTERVAL_S = 0.5
MAX_DELAY_S = 10 * 366 * 86400
"""A delayed start lies at most about ten years ahead."""


class Client(AsyncClosing):
    def __init__(
        self,
        store: ExecutionStore,
        *,
        flows: Container[str] | None = None,
        owns_store: bool = False,
        max_poll_interval_s: float = MAX_POLL_INTERVAL_S,
    ) -> None:
        """`flows`: the flow ids `create` accepts (an `App` will do); None accepts any."""
        self._max_poll_s = check_positive(max_poll_interval_s, "max_poll_interval_s")
        self._store = store
        self._flows = flows
        self._owns_store = owns_store

    @classmethod
    async def connect(
        cls,
        store_or_url: ExecutionStore | str | None = None,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        flows: Container[str] | None = None,
        **store_options: Any,
    ) -> Client:
        """A client on an open store, or on a store it opens (and closes) from a URL."""
        store, owned = await use_store(store_or_url, table_prefix=table_prefix, **store_options)
        return cls(store, flows=flows, owns_store=owned)

    @property
    def store(self) -> ExecutionStore:
        return self._store

    async def close(self) -> None:
        if self._owns_store:
            await self._store.close()

    # ------------------------------------------------------------ creating

    async def create(
        self,
        flow_id: str,
        *,
        owner_id: str,
        options: ExecutionOptions | Mapping[str, Any] | None = None,
        integration: Mapping[str, JSON] | None = None,
        events: Sequence[FlowEvent | Mapping[str, Any]] | None = None,
        start: bool = True,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
    ) -> str:
        """Create a root execution; returns its id.

        It is runnable at once, or from `run_at` or after `delay` (a timedelta or seconds,
        from the database's clock), unless `start=False`. `priority`: lower runs first. With
        `idempotency_key`, a flow's execution that already holds the key is returned instead
        of creating another one.
        """
        self._check_flow(flow_id)
        when = await self._start_time(run_at, delay)
        execution = _new_root(
            flow_id, owner_id=owner_id, options=options, integration=integration, events=events,
            run_at=when, priority=priority, idempotency_key=idempotency_key,
        )
        execution_id = await self._store.create(execution, start=bool(start))
        if execution_id != execution.id:
            log.info(
                "execution %s of %s already holds idempotency key %r",
                execution_id, flow_id, idempotency_key,
                extra={"execution_id": execution_id, "flow_id": flow_id},
            )
            return execution_id
        log.info(
            "created execution %s of %s%s",
            execution.id, flow_id, "" if start else " (not started)",
            extra={"execution_id": execution.id, "flow_id": flow_id},
        )
        return execution.id

    async def create_many(
        self, flow_id: str, items: Sequence[Mapping[str, Any]], *, start: bool = True
    ) -> list[str]:
        """Create root executions of one flow in one store batch, all or nothing (at most
        `MAX_CREATE_BATCH`); returns their ids in the order of `items`.

        Each item holds `create`'s keyword arguments: `owner_id`, and optionally `options`,
        `integration`, `events`, `run_at`, `delay`, `priority` and `idempotency_key`. An item
        whose key an execution already holds gets that execution's id. A bad item raises
        `InvalidItem`, naming its index.
        """
        self._check_flow(flow_id)
        check_sequence(items, "items must be a sequence of dicts")
        needs_clock = any(isinstance(i, Mapping) and i.get("delay") is not None for i in items)
        now = await self._store.now() if needs_clock else None
        executions = [_new_item(flow_id, n, item, now) for n, item in enumerate(items)]
        inserted = await self._store.create_many(executions, start=bool(start))
        log.info(
            "created %d executions of %s%s",
            len(inserted), flow_id, "" if start else " (not started)",
            extra={"flow_id": flow_id},
        )
        return [
            await self._holder_id(e) if e.id not in inserted else e.id for e in executions
        ]

    async def _holder_id(self, execution: Execution) -> str:
        """The id of the execution `create_many` left out: its own, or the key holder's."""
        if execution.idempotency_key is not None:
            holder = await self._store.get_by_idempotency_key(
                execution.flow_id, execution.idempotency_key
            )
            if holder is not None:
                return holder.id
        return execution.id

    async def _start_time(
        self, run_at: datetime | None, delay: timedelta | float | None
    ) -> datetime | None:
        if run_at is not None and delay is not None:
            raise ValidationError("give run_at or delay, not both")
        if delay is None:
            return run_at
        return await self._store.now() + _as_delay(delay)

    def _check_flow(self, flow_id: str) -> None:
        check_id(flow_id, "flow_id")
        if self._flows is not None and flow_id not in self._flows:
            raise FlowNotFound(flow_id)

    async def start(self, execution_id: str) -> bool:
        """Make an execution created with `start=False` runnable; False if it already was."""
        return await self._store.start_execution(execution_id)

    # ------------------------------------------------------------ lifecycle

    async def stop(self, execution_id: str, reason: str | None = None) -> None:
        """Stop for good; the reason is kept as the execution's `error_message`."""
        await self._set_status(execution_id, ExecutionStatus.STOPPED, error_message=reason)
        log.info("stopped execution %s%s", execution_id, f": {reason}" if reason else "",
                 extra={"execution_id": execution_id})

    async def pause(self, execution_id: str, reason: str | None = None) -> None:
        """Hold a running execution at its next node boundary until `resume`."""
        await self._set_status(
            execution_id, ExecutionStatus.PAUSED, expected=ExecutionStatus.RUNNING
        )
        log.info("paused execution %s%s", execution_id, f": {reason}" if reason else "",
                 extra={"execution_id": execution_id})

    async def resume(self, execution_id: str) -> None:
        """Let a paused execution continue; anything but `paused` raises `InvalidTransition`.

        One compare-and-set write, so a run that recovery requeued meanwhile is never marked
        running without a worker.
        """
        await self._set_status(
            execution_id, ExecutionStatus.RUNNING, expected=ExecutionStatus.PAUSED
        )
        log.info("resumed execution %s", execution_id, extra={"execution_id": execution_id})

    async def retry(self, execution_id: str, reason: str | None = None) -> None:
        """End the current attempt of a running or paused execution and put it back in the
        queue at once (`flow:requeued`, with the reason); finished executions stay finished."""
        await self._set_status(
            execution_id,
            ExecutionStatus.CREATED,
            event_data=None if reason is None else {"reason": reason},
        )
        log.info("requeued execution %s%s", execution_id, f": {reason}" if reason else "",
                 extra={"execution_id": execution_id})

    async def _set_status(
        self,
        execution_id: str,
        status: ExecutionStatus,
        *,
        error_message: str | None = None,
        expected: ExecutionStatus | None = None,
        event_data: dict[str, JSON] | None = None,
    ) -> None:
        params = UpdateExecutionStatusParams(
            execution_id=execution_id,
            status=status,
            error_message=error_message,
            expected_status=expected,
            event_data=event_data,
        )
        if not await self._store.update_execution_status(params):
            raise ExecutionNotFound(execution_id)

    # ------------------------------------------------------------ reading

    async def get(self, execution_id: str) -> Execution:
        execution = await self._store.get(execution_id)
        if execution is None:
            raise ExecutionNotFound(execution_id)
        return execution

    async def tree(
        self, execution_id: str, *, max_nodes: int | None = None
    ) -> list[ExecutionTreeNode]:
        """The execution and its descendants, by (level, id), at most `max_nodes`."""
        nodes = await self._store.get_execution_tree(execution_id, max_nodes=max_nodes)
        if not nodes:
            raise ExecutionNotFound(execution_id)
        return nodes

    def events(
        self,
        execution_id: str,
        from_index: int = 0,
        types: Sequence[str] | None = None,
        follow: bool = True,
    ) -> AsyncIterator[ExecutionEvent]:
        """The execution's events from `from_index`, each once and in order: the stored ones,
        then (with `follow`) live ones until the execution has ended. Resume after a
        disconnect with `from_index` = the last index seen + 1."""
        check_id(execution_id, "execution_id")
        return follow_events(
            self._store, execution_id, from_index=from_index, types=types, follow=follow
        )

    async def wait(
        self,
        execution_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the documented API; it polls the store
        *,
        tree: bool = False,
    ) -> Execution:
        """Return the execution once it is terminal (with `tree`, once every execution of its
        subtree is: children it emitted included); `ExecutionTimeout` after `timeout` s."""
        if timeout is not None:
            check_positive(timeout, "timeout", allow_zero=True)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else (loop.time() + timeout, timeout)
        pause = WAIT_FIRST_POLL_S
        while True:
            execution, unfinished = await self._unfinished(execution_id, tree)
            if unfinished is None:
                return execution
            if deadline is not None:
                ends_at, timeout_s = deadline
                left = ends_at - loop.time()
                if left <= 0:
                    raise ExecutionTimeout(unfinished.id, unfinished.status, timeout_s)
                pause = min(pause, left)
            await asyncio.sleep(pause)
            pause = min(pause * WAIT_POLL_GROWTH, self._max_poll_s)

    async def _unfinished(
        self, execution_id: str, tree: bool
    ) -> tuple[Execution, Execution | None]:
        """The execution, and one unfinished execution of what `wait` waits for (if any)."""
        if not tree:
            execution = await self.get(execution_id)
            return execution, None if execution.status.is_terminal else execution
        nodes = await self._store.get_execution_tree(execution_id)
        if not nodes:
            raise ExecutionNotFound(execution_id)
        unfinished = (n.execution for n in nodes if not n.execution.status.is_terminal)
        return nodes[0].execution, next(unfinished, None)

    async def result(self, execution_id: str) -> JSON:
        """The result of a completed execution; `ExecutionNotCompleted` for any other status."""
        return (await self.get(execution_id)).completed_result()


class InvalidItem(ValidationError):
    """An item of `Client.create_many` that `create` would refuse; nothing was written."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"items[{index}]: {reason}")
        self.index = index
        self.reason = reason


ITEM_KEYS = frozenset({
    "owner_id", "options", "integration", "events", "run_at", "delay", "priority",
    "idempotency_key",
})
"""What an item of `Client.create_many` may hold: `create`'s keyword arguments."""


def _new_root(
    flow_id: str,
    *,
    owner_id: str,
    options: ExecutionOptions | Mapping[str, Any] | None = None,
    integration: Mapping[str, JSON] | None = None,
    events: Sequence[FlowEvent | Mapping[str, Any]] | None = None,
    run_at: datetime | None = None,
    priority: int = 0,
    idempotency_key: str | None = None,
) -> Execution:
    if integration is not None and not isinstance(integration, Mapping):
        raise ValidationError(
            f"integration must be a dict or None, not {type(integration).__name__}"
        )
    return new_execution(
        flow_id,
        owner_id,
        options=options,
        integration=integration,
        external_events=parse_events(events),
        run_at=run_at,
        priority=priority,
        idempotency_key=idempotency_key,
    )


def _as_delay(delay: object) -> timedelta:
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, (int, float)) and not isinstance(delay, bool):
        seconds = float(delay)
    else:
        raise ValidationError(f"delay must be a timedelta or seconds, not {type(delay).__name__}")
    if not 0 <= seconds <= MAX_DELAY_S:
        raise ValidationError(f"delay must be between 0 and {MAX_DELAY_S} seconds, got {seconds}")
    return timedelta(seconds=seconds)


def _new_item(flow_id: str, index: int, item: object, now: datetime | None) -> Execution:
    if not isinstance(item, Mapping):
        raise InvalidItem(index, f"an item is a dict, not {type(item).__name__}")
    unknown = sorted(str(key) for key in set(item) - ITEM_KEYS)
    if unknown:
        raise InvalidItem(index, f"unknown keys {unknown}; an item may hold {sorted(ITEM_KEYS)}")
    if "owner_id" not in item:
        raise InvalidItem(index, "an item needs an owner_id")
    try:
        fields = dict(item)
        delay = fields.pop("delay", None)
        if delay is not None:
            if fields.get("run_at") is not None:
                raise ValidationError("give run_at or delay, not both")
            assert now is not None, "create_many reads the clock when an item has a delay"
            fields["run_at"] = now + _as_delay(delay)
        return _new_root(flow_id, **fields)
    except ValidationError as exc:
        raise InvalidItem(index, str(exc)) from None
