"""A worker's buffer of run events, written by one background loop (docs/architecture.md §7).

Runs add `node:*`, `child:spawned`, `breakpoint:hit` and `log` events without waiting. The
flusher writes everything pending in one `append_events` per tick (every `FLUSH_INTERVAL_S`,
or at once when `FLUSH_AT` events wait), each execution fenced by its claim, so a flow with a
thousand nodes costs a few statements, and a flow without nodes none. Before a run's own status
write, its pending events go first (`flush`), which keeps the log in the run's order. The store
refuses the events of a run whose lease is gone; they are dropped with a log line.

Checkpoints (durable steps, §11) travel in the same batches: a node that completed adds its
`node:completed` event with its result and waits until both are written (`record`). Whoever
writes takes everything pending, so nodes that complete together share one round trip
(group commit), and a node's flow never goes on before its result is durable.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from flowexec.errors import ClaimLost, StoreUnavailable
from flowexec.model import EventBatch, NewEvent, NodeCheckpoint
from flowexec.runtime.logs import BoundLogger
from flowexec.store.limits import MAX_BATCH
from flowexec.store.protocol import ExecutionStore

FLUSH_INTERVAL_S = 0.05
RECORD_RETRY_S = 0.5
"""Pause before a checkpoint write that failed (store unreachable) is tried again."""
FLUSH_AT = 500
"""Pending events that make the flusher write at once instead of at its next tick."""
MAX_PENDING_PER_RUN = 10_000
"""While the store cannot be reached, a run keeps at most this many events; later ones are
dropped (and counted in a log line) rather than growing without bound."""

RunKey = tuple[str, int]
"""(execution_id, epoch): one run."""

Recording = tuple[NodeCheckpoint, "asyncio.Future[None]"]
"""A checkpoint waiting to be written, and the future its node awaits."""


class EventBuffer:
    def __init__(self, store: ExecutionStore, *, worker_id: str, log: BoundLogger) -> None:
        self._store = store
        self._worker_id = worker_id
        self._log = log
        self._pending: dict[RunKey, list[NewEvent]] = {}
        self._count = 0
        self._overflowed: dict[RunKey, int] = {}
        self._recordings: dict[RunKey, list[Recording]] = {}
        self._wanted = asyncio.Event()
        self._writing = asyncio.Lock()

    def add(self, run: RunKey, event: NewEvent) -> None:
        events = self._pending.setdefault(run, [])
        if len(events) >= MAX_PENDING_PER_RUN:
            self._overflowed[run] = self._overflowed.get(run, 0) + 1
            return
        events.append(event)
        self._count += 1
        if self._count >= FLUSH_AT:
            self._wanted.set()

    async def record(self, run: RunKey, event: NewEvent, checkpoint: NodeCheckpoint) -> None:
        """Write `event` and `checkpoint` with everything else pending, and return once they
        are durable; `ClaimLost` if the run's lease is gone (nothing was recorded). While the
        store cannot be reached it tries again: the lease watchdog ends the run if that lasts."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(run, []).append(event)
        self._count += 1
        self._recordings.setdefault(run, []).append((checkpoint, done))
        try:
            while not done.done():
                try:
                    await self.flush()
                except StoreUnavailable as exc:
                    if not done.done():
                        self._log.warning("recording a node result failed, retrying: %s", exc)
                        await asyncio.sleep(RECORD_RETRY_S)
            done.result()
        finally:
            done.cancel()  # no effect once done; else no one is left to wait for it

    async def run(self) -> None:
        """Flush on every tick until cancelled; the worker flushes once more after that."""
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), FLUSH_INTERVAL_S)
            self._wanted.clear()
            try:
                await self.flush()
            except StoreUnavailable as exc:
                self._log.warning("writing run events failed, will try again: %s", exc)
            except Exception:
                self._log.exception("writing run events failed, will try again")

    async def flush(self, run: RunKey | None = None) -> None:
        """Write what is pending: one run's events, or everyone's. Events that could not be
        written because the store failed stay pending, in order."""
        async with self._writing:
            if run is None:
                taken, self._pending = self._pending, {}
                recordings, self._recordings = self._recordings, {}
            else:
                events = self._pending.pop(run, None)
                taken = {run: events} if events else {}
                recorded = self._recordings.pop(run, None)
                recordings = {run: recorded} if recorded else {}
            self._report_overflow(taken)
            if not taken and not recordings:
                return
            self._count -= sum(len(events) for events in taken.values())
            try:
                await self._write(taken, recordings)
            except BaseException:
                for key, events in taken.items():
                    self._pending[key] = events + self._pending.get(key, [])
                    self._count += len(events)
                for key, recorded in recordings.items():
                    self._recordings[key] = recorded + self._recordings.get(key, [])
                raise

    async def _write(
        self, taken: dict[RunKey, list[NewEvent]], recordings: dict[RunKey, list[Recording]]
    ) -> None:
        # One batch per execution and statement: two runs of one execution go in two calls.
        calls: list[dict[str, EventBatch]] = []
        for key in taken.keys() | recordings.keys():
            execution_id, epoch = key
            checkpoints = tuple(checkpoint for checkpoint, _ in recordings.get(key, ()))
            batch = EventBatch(execution_id, epoch, tuple(taken.get(key, ())), checkpoints)
            call = next(
                (c for c in calls if execution_id not in c and len(c) < MAX_BATCH), None
            )
            if call is None:
                calls.append({execution_id: batch})
            else:
                call[execution_id] = batch
        for call in calls:
            written = await self._store.append_events(self._worker_id, list(call.values()))
            for execution_id, batch in call.items():
                appended = execution_id in written
                for _, done in recordings.get((execution_id, batch.epoch), ()):
                    if done.done():
                        continue  # its node was cancelled meanwhile
                    if appended:
                        done.set_result(None)
                    else:
                        done.set_exception(ClaimLost(execution_id, self._worker_id, batch.epoch))
                if not appended:
                    self._log.warning(
                        "dropped %d events: the run's lease is gone", len(batch.events),
                        extra={"execution_id": execution_id, "epoch": batch.epoch},
                    )

    def _report_overflow(self, taken: dict[RunKey, list[NewEvent]]) -> None:
        for key in [k for k in self._overflowed if k in taken]:
            self._log.warning(
                "dropped %d events while the store was unreachable", self._overflowed.pop(key),
                extra={"execution_id": key[0], "epoch": key[1]},
            )
