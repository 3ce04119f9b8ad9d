"""Durable steps of one run (docs/architecture.md §11): node ids, replay, sleeps and waits.

A node that completed is recorded (its JSON result, fenced by the claim) before the flow goes
on; a later attempt of the same execution gets the recorded result back instead of running the
node again. Node ids are therefore unique within an execution. A long sleep and a wait for
children record when they started and give the claim back (`Suspended`): the execution is
queued again for later through `available_at`, as a retry's backoff is, without counting a
failure, and the re-run replays its recorded nodes up to the sleep or wait and goes on.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from flowexec.errors import ExecutionNotFound, ExecutionTimeout, ValidationError
from flowexec.model import (
    JSON,
    EventType,
    Execution,
    ExecutionStatus,
    NewEvent,
    NodeCheckpoint,
    check_id,
    check_positive,
)
from flowexec.runtime.lease import Lease
from flowexec.store.limits import MAX_BACKOFF_MS

DURABLE_SLEEP_AFTER_S = 1.0
"""A sleep longer than this gives the claim back; a shorter one sleeps in place."""
MAX_STEP_S = 100 * 366 * 24 * 3600.0
"""The longest sleep or wait timeout taken (a century): later times do not fit a datetime."""
WAIT_IN_PLACE_S = 1.0
"""How long a wait for children first polls while holding its worker slot, before it gives
the claim back: children that finish quickly cost the parent no re-run."""
WAIT_POLL_S = 0.1
WAIT_RECHECK_MIN_S = 0.5
WAIT_RECHECK_MAX_S = 10.0
"""A parent that gave the claim back looks again after half the time it has waited so far,
within these bounds."""


class Suspended(BaseException):
    """Raised out of a flow to give the claim back until `delay_ms` from now.

    A `BaseException`, so that a flow's `except Exception` cannot swallow it.
    """

    def __init__(self, delay_ms: int, reason: str) -> None:
        super().__init__(reason)
        self.delay_ms = min(max(delay_ms, 0), MAX_BACKOFF_MS)
        self.reason = reason


class DurableSteps:
    """What one attempt knows of its execution's recorded steps."""

    def __init__(self, lease: Lease, *, enabled: bool) -> None:
        self.enabled = enabled
        """Whether nodes are recorded unless they say otherwise (`@app.flow(checkpoint=...)`)."""
        self._lease = lease
        self._used: set[str] = set()
        self._recorded: dict[str, JSON] | None = None
        self._loading = asyncio.Lock()
        self._counters: Counter[str] = Counter()

    def use(self, node_id: str) -> None:
        """Take `node_id` for this run; a second use is a `ValidationError`."""
        if node_id in self._used:
            raise ValidationError(
                f"node id {node_id!r} is used twice in this execution; node ids must be "
                f"unique (in a loop, use ids like 'fetch-{{i}}')"
            )
        self._used.add(node_id)

    def next_id(self, kind: str) -> str:
        """The id of this run's next sleep or wait: `sleep#1`, `sleep#2`, ..."""
        self._counters[kind] += 1
        node_id = f"{kind}#{self._counters[kind]}"
        self.use(node_id)
        return node_id

    async def replayed(self, node_id: str) -> tuple[bool, JSON]:
        """Whether an earlier attempt recorded `node_id`, and its result; the first call reads
        every recorded node of the execution at once."""
        if self._recorded is None:
            async with self._loading:
                if self._recorded is None:
                    self._recorded = await self._lease.recorded_steps()
        if node_id not in self._recorded:
            return False, None
        self._lease.record(EventType.NODE_REPLAYED, {"node_id": node_id})
        return True, self._recorded[node_id]

    async def record(self, event: NewEvent, node_id: str, result: JSON) -> None:
        """Record the node's result (checked JSON) with its event; return once durable."""
        await self._lease.record_step(event, NodeCheckpoint(node_id, result))

    # ------------------------------------------------------------ sleeping

    async def sleep(self, seconds: float) -> None:
        seconds = _check_duration(seconds, "seconds", allow_zero=True)
        if not self.enabled or seconds <= DURABLE_SLEEP_AFTER_S:
            await asyncio.sleep(seconds)
            return
        node_id = self.next_id("sleep")
        found, recorded = await self.replayed(node_id)
        if found:
            wake_at = _recorded_time(recorded, "wake_at")
            remaining = (wake_at - await self._lease.store.now()).total_seconds()
        else:
            wake_at = await self._lease.store.now() + timedelta(seconds=seconds)
            remaining = seconds
            data: dict[str, JSON] = {"node_id": node_id, "wake_at": wake_at.isoformat()}
            await self.record(NewEvent(EventType.NODE_STARTED, data), node_id, data)
        if remaining > DURABLE_SLEEP_AFTER_S:
            raise Suspended(math.ceil(remaining * 1000), f"sleeping until {wake_at.isoformat()}")
        await asyncio.sleep(max(remaining, 0.0))

    # ------------------------------------------------------------ waiting for children

    async def wait_for_children(
        self,
        child_ids: Sequence[str],
        timeout: float | None,  # noqa: ASYNC109 - a durable deadline, kept across attempts
    ) -> list[Execution]:
        if isinstance(child_ids, str) or not isinstance(child_ids, Sequence):
            raise ValidationError("child_ids must be a list of execution ids")
        ids = [check_id(i, "child id") for i in child_ids]
        timeout_s = None if timeout is None else _check_duration(timeout, "timeout")
        if not ids:
            return []
        store = self._lease.store
        node_id = self.next_id("wait")
        found, recorded = await self.replayed(node_id) if self.enabled else (False, None)
        if found:
            started_at = _recorded_time(recorded, "started_at")
        else:
            started_at = await store.now()
            if self.enabled:
                data: dict[str, JSON] = {"node_id": node_id, "started_at": started_at.isoformat()}
                await self.record(NewEvent(EventType.NODE_STARTED, data), node_id, data)
        deadline = None if timeout_s is None else started_at + timedelta(seconds=timeout_s)
        loop = asyncio.get_running_loop()
        # A re-run comes back to look once: it holds the slot in place only the first time.
        in_place_until = loop.time() + (0.0 if found else WAIT_IN_PLACE_S)
        pause = WAIT_POLL_S
        while True:
            unfinished = await self._unfinished(ids)
            if not unfinished:
                return await self._finished(ids)
            now = await store.now()
            if deadline is not None and now >= deadline:
                child_id, status = unfinished[0]
                raise ExecutionTimeout(child_id, status, timeout_s or 0.0)
            if self.enabled and loop.time() >= in_place_until:
                waited = (now - started_at).total_seconds()
                delay = min(max(waited / 2, WAIT_RECHECK_MIN_S), WAIT_RECHECK_MAX_S)
                if deadline is not None:
                    delay = min(delay, (deadline - now).total_seconds())
                raise Suspended(
                    math.ceil(delay * 1000), f"waiting for {len(unfinished)} children"
                )
            await asyncio.sleep(pause)
            if not self.enabled:  # no record to come back to: keep waiting in place
                pause = min(pause * 2, 1.0)

    async def _unfinished(self, ids: list[str]) -> list[tuple[str, ExecutionStatus]]:
        statuses = await self._lease.store.get_statuses(ids)
        missing = [i for i in ids if i not in statuses]
        if missing:
            raise ExecutionNotFound(missing[0])
        return [(i, statuses[i]) for i in ids if not statuses[i].is_terminal]

    async def _finished(self, ids: list[str]) -> list[Execution]:
        store = self._lease.store
        found = {c.id: c for c in await store.get_child_executions(self._lease.execution_id)}
        executions: list[Execution] = []
        for child_id in ids:
            execution = found.get(child_id) or await store.get(child_id)
            if execution is None:
                raise ExecutionNotFound(child_id)
            executions.append(execution)
        return executions


def _check_duration(value: object, name: str, *, allow_zero: bool = False) -> float:
    seconds = check_positive(value, name, allow_zero=allow_zero)
    if seconds > MAX_STEP_S:
        raise ValidationError(f"{name} must be at most {MAX_STEP_S:g} s (a century), got {value}")
    return seconds


def _recorded_time(recorded: JSON, key: str) -> datetime:
    if not isinstance(recorded, dict) or not isinstance(recorded.get(key), str):
        raise ValidationError(f"the recorded step has no {key!r}: was its node id reused?")
    return datetime.fromisoformat(str(recorded[key]))
