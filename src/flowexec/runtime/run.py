"""One started execution on its way through a worker: run the flow, settle the outcome.

The flow runs in a task of its own so that the worker can cancel it (lease lost, stopped,
shutdown) while this object still decides what, if anything, to write afterwards:
- returned: `completed` with the result;
- `Fail`, or input that can never pass (`ValidationError`): `failed` at once;
- anything else raised (timeouts included): a counted failure, requeued with backoff until
  the flow's `max_retries` is spent, then `failed`;
- lease lost or stopped: nothing (someone else owns the execution, or it is finished);
- shutdown: back to the queue without counting a failure;
- suspended (a long `ctx.sleep`, a wait for children): back to the queue for later
  (`available_at`), without counting a failure.
Every write is fenced by the lease; the terminal or requeue write releases the lease too.
A completion goes out with the worker's next claim (`CompletionQueue`) when it can.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from flowexec.errors import (
    ClaimLost,
    ExecutionNotFound,
    Fail,
    FlowTimeout,
    InvalidTransition,
    StoreUnavailable,
    ValidationError,
)
from flowexec.model import (
    JSON,
    MAX_JSON_BYTES,
    Completion,
    Execution,
    ExecutionStatus,
    StartedExecution,
    check_json,
    storable_text,
)
from flowexec.runtime.completions import CompletionQueue
from flowexec.runtime.context import FlowContext
from flowexec.runtime.control import AbortReason, RunControl
from flowexec.runtime.event_buffer import EventBuffer
from flowexec.runtime.flows import FlowRegistry, FlowSpec
from flowexec.runtime.lease import Lease
from flowexec.runtime.lease_keeper import LeaseTerm
from flowexec.runtime.logs import BoundLogger
from flowexec.runtime.outcomes import (
    NOT_RETRYABLE,
    Outcome,
    Raised,
    Returned,
    describe_error,
    failure_details,
    traceback_lines,
)
from flowexec.runtime.settings import RunSettings
from flowexec.runtime.steps import Suspended
from flowexec.runtime.tracing import run_span
from flowexec.store.protocol import ExecutionStore

STORE_RETRY_S = 0.5
"""Pause between attempts at a final write while the store is unreachable."""

class Phase(Enum):
    RUNNING = "running"  # the flow runs (or waits for a resume)
    QUEUED = "queued"  # returned; the completion waits for the worker's next claim
    FINISHING = "finishing"  # the final write is in flight
    DONE = "done"


class ExecutionRun:
    def __init__(
        self,
        *,
        app: FlowRegistry,
        store: ExecutionStore,
        started: StartedExecution,
        completions: CompletionQueue,
        lease_term: LeaseTerm,
        settings: RunSettings,
        log: BoundLogger,
        events: EventBuffer | None = None,
    ) -> None:
        self._app = app
        self._settings = settings
        self._execution = started.execution
        self._completions = completions
        self._queued: asyncio.Future[bool] | None = None
        claim = started.claim
        self.lease = Lease.of(store, claim, events)
        self.execution_id = claim.execution_id
        self.epoch = claim.epoch
        self.flow_id = started.execution.flow_id
        self.began_at = time.monotonic()
        self.settled: ExecutionStatus | None = None
        """The status this run's final write left the execution in; None until (or unless)
        it wrote one."""
        self.phase = Phase.RUNNING
        self.lease_term = lease_term
        self.control = RunControl(on_abort=self._cancel_flow)
        self.log = log.bind(
            execution_id=self.execution_id, epoch=self.epoch, flow_id=started.execution.flow_id
        )
        self._flow_task: asyncio.Task[Any] | None = None

    # ------------------------------------------------------------ what the worker sees

    @property
    def holds_lease(self) -> bool:
        """Whether heartbeats should renew this run's lease (until its completion is written:
        the write releases the lease, and a refused heartbeat then means nothing)."""
        if self.control.aborted:
            return False
        if self.phase is Phase.QUEUED:
            return self._queued is not None and not self._queued.done()
        return self.phase is Phase.RUNNING

    @property
    def is_polled(self) -> bool:
        """Whether the control poll should watch this run's status."""
        return self.phase is Phase.RUNNING and not self.control.aborted

    def abort(self, reason: AbortReason, detail: str = "") -> None:
        if self.control.abort(reason, detail) and reason is not AbortReason.SHUTDOWN:
            self.log.warning("run cancelled: %s", self.control.abort_detail)

    def _cancel_flow(self) -> None:
        if self._flow_task is not None:
            self._flow_task.cancel()

    # ------------------------------------------------------------ the run

    async def execute(self) -> None:
        try:
            if self.control.aborted:  # taken while the worker was stopping
                await self._give_back()
                return
            execution = self._execution
            spec = self._app.get_flow(execution.flow_id)
            self.log.info("started (attempt %d)", execution.failure_count + 1)
            with run_span(execution, attempt=execution.failure_count + 1, epoch=self.epoch,
                          worker_id=self.lease.worker_id) as span:
                outcome = await self._run_flow(spec, execution)
                if isinstance(outcome, Raised):
                    span.failed(outcome.error, outcome.node_id)
                await self._settle(spec, execution, outcome)
        except StoreUnavailable as exc:
            self.log.error("store unavailable; the lease will lapse and recovery will act: %s",
                           exc)
        except Exception:
            self.log.exception("run crashed; the lease will lapse and recovery will act")
        finally:
            self.phase = Phase.DONE
            self._cancel_flow()

    async def _run_flow(self, spec: FlowSpec, execution: Execution) -> Outcome:
        ctx = FlowContext(
            execution,
            lease=self.lease,
            control=self.control,
            log=self.log,
            check_flow=self._app.get_flow,
            max_depth=self._settings.max_depth,
            checkpoint=spec.checkpoint,
        )
        task = asyncio.create_task(self._call_flow(spec, ctx), name=f"flowexec:{execution.id}")
        self._flow_task = task
        if self.control.aborted:
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if _being_cancelled():
                raise
        except (Exception, Suspended):
            pass  # the outcome is read from the task below
        if task.cancelled():
            error: BaseException = asyncio.CancelledError("the flow was cancelled")
            return Raised(error, ctx.interrupted_node)
        exc = task.exception()
        if exc is None:
            return Returned(task.result())
        if isinstance(exc, Suspended):
            return exc
        node_id = ctx.failing_node(exc)
        if node_id is None and isinstance(exc, FlowTimeout):
            node_id = ctx.interrupted_node
        return Raised(exc, node_id)

    async def _call_flow(self, spec: FlowSpec, ctx: FlowContext) -> Any:
        limits = ctx.options.execution if ctx.options else None
        budget_ms = limits.flow_timeout_ms if limits else None
        if budget_ms is None:
            return await spec.fn(ctx)
        try:
            async with asyncio.timeout(budget_ms / 1000) as deadline:
                self.control.attach_deadline(deadline)
                return await spec.fn(ctx)
        except TimeoutError:
            if deadline.expired():
                raise FlowTimeout(ctx.execution_id, budget_ms) from None
            raise

    # ------------------------------------------------------------ settling

    async def _settle(self, spec: FlowSpec, execution: Execution, outcome: Outcome) -> None:
        if self.control.aborted:
            await self._end_aborted()
            return
        if isinstance(outcome, Raised) and isinstance(outcome.error, ClaimLost):
            self.control.abort(AbortReason.LOST, str(outcome.error))
            await self._end_aborted()
            return
        write, describe = self._decide(spec, execution, outcome)
        while True:
            if not await self.control.wait_running():
                await self._end_aborted()
                return
            self.phase = Phase.FINISHING
            try:
                await write()
            except InvalidTransition as exc:
                if exc.current == ExecutionStatus.PAUSED.value:
                    self.phase = Phase.RUNNING  # paused meanwhile: settle after the resume
                    self.control.pause()
                    continue
                self.log.info("outcome discarded: the execution is %s", exc.current)
                return
            except (ClaimLost, ExecutionNotFound) as exc:
                self.log.warning("outcome discarded, lease lost: %s", exc)
                return
            except StoreUnavailable as exc:
                if self.lease_term.ran_out:
                    raise
                self.phase = Phase.RUNNING  # heartbeats keep the lease while we try again
                self.log.warning("final write failed, trying again: %s", exc)
                await asyncio.sleep(STORE_RETRY_S)
                continue
            describe()
            return

    def _decide(
        self, spec: FlowSpec, execution: Execution, outcome: Outcome
    ) -> tuple[Callable[[], Awaitable[Any]], Callable[[], None]]:
        """The final write for this outcome, and how to log it once it succeeded."""
        if isinstance(outcome, Suspended):
            return self._suspend(outcome)
        if isinstance(outcome, Returned):
            try:
                check_json(outcome.value, "result")
            except ValidationError as exc:
                return self._fail(str(exc), None)
            return self._complete(outcome.value)
        error, node_id = outcome.error, outcome.node_id
        details = failure_details(error)
        if isinstance(error, NOT_RETRYABLE):
            message = error.message if isinstance(error, Fail) else str(error)
            return self._fail(message or type(error).__name__, node_id, details)
        # A database outage in the middle of a run (an emit, say) is not the flow's failure:
        # try again later without spending one of its retries.
        counted = not isinstance(error, StoreUnavailable)
        return self._retry(
            spec, execution, describe_error(error, node_id), node_id, counted, details
        )

    def _complete(
        self, value: JSON
    ) -> tuple[Callable[[], Awaitable[Any]], Callable[[], None]]:
        async def write() -> None:
            await self.lease.flush_events()  # the run's events before its flow:completed
            if not await self._complete_with_next_claim(value):
                await self.lease.set_status(ExecutionStatus.COMPLETED, result=value)
            self.settled = ExecutionStatus.COMPLETED

        return write, lambda: self.log.info("completed")

    async def _complete_with_next_claim(self, value: JSON) -> bool:
        future = self._completions.submit(Completion(self.execution_id, self.epoch, value))
        if future is None:
            return False
        self._queued = future
        self.phase = Phase.QUEUED
        try:
            return await future
        finally:
            self.phase = Phase.FINISHING

    def _fail(
        self, message: str, node_id: str | None, details: dict[str, JSON] | None = None
    ) -> tuple[Callable[[], Awaitable[Any]], Callable[[], None]]:
        message = storable_text(message, MAX_JSON_BYTES)

        async def write() -> None:
            await self.lease.set_status(
                ExecutionStatus.FAILED,
                error_message=message,
                error_node_id=node_id,
                event_data=details,
            )
            self.settled = ExecutionStatus.FAILED

        return write, lambda: self.log.warning(
            "failed without retry%s: %s%s", f" in node {node_id}" if node_id else "", message,
            traceback_lines(details), extra={"node_id": node_id},
        )

    def _retry(
        self,
        spec: FlowSpec,
        execution: Execution,
        reason: str,
        node_id: str | None,
        counted: bool,
        details: dict[str, JSON],
    ) -> tuple[Callable[[], Awaitable[Any]], Callable[[], None]]:
        delay_ms = self._settings.retry_backoff.jittered_ms(
            execution.failure_count, self._settings.rng
        )
        after: list[Execution] = []

        async def write() -> None:
            after.append(
                await self.lease.retry(
                    reason=reason,
                    delay_ms=delay_ms,
                    max_failures=spec.max_failures,
                    error_node_id=node_id,
                    count_failure=counted,
                    event_data=details,
                )
            )
            self.settled = after[-1].status

        def describe() -> None:
            done = after[-1]
            if done.status is ExecutionStatus.FAILED:
                self.log.warning(
                    "failed after %d attempts: %s%s", done.failure_count, reason,
                    traceback_lines(details), extra={"node_id": node_id},
                )
            elif not counted:
                self.log.warning(
                    "the store failed mid-run, running again in %d ms: %s", delay_ms, reason,
                    extra={"node_id": node_id},
                )
            else:
                self.log.warning(
                    "attempt %d failed, retrying in %d ms: %s%s", done.failure_count, delay_ms,
                    reason, traceback_lines(details), extra={"node_id": node_id},
                )

        return write, describe

    def _suspend(
        self, suspended: Suspended
    ) -> tuple[Callable[[], Awaitable[Any]], Callable[[], None]]:
        """Give the claim back until the sleep or wait is due; no failure is counted."""

        async def write() -> None:
            await self.lease.retry(
                reason=suspended.reason,
                delay_ms=suspended.delay_ms,
                suspend=True,
            )

        return write, lambda: self.log.info(
            "suspended for %d ms: %s", suspended.delay_ms, suspended.reason
        )

    async def _end_aborted(self) -> None:
        reason = self.control.abort_reason
        if reason is AbortReason.SHUTDOWN:
            await self._give_back()
        elif reason is AbortReason.STOPPED:
            self.log.info("stopped by a client")
        else:
            self.log.warning("nothing written: %s", self.control.abort_detail)

    async def _give_back(self) -> None:
        """Shutdown: back to the queue at once, without counting a failure."""
        self.phase = Phase.FINISHING
        try:
            await self.lease.retry(
                reason=AbortReason.SHUTDOWN.value, delay_ms=0, count_failure=False
            )
            self.log.info("put back in the queue: worker shutting down")
        except (ClaimLost, ExecutionNotFound, InvalidTransition) as exc:
            self.log.info("nothing to put back: %s", exc)


def _being_cancelled() -> bool:
    """Whether the running task itself is being cancelled (not just the flow it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
