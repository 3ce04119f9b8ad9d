"""The scheduler loop: one elected instance per installation fills the schedules' due slots.

Every worker whose app declares schedules runs a `Scheduler`, elected by a store lock as the
recovery service is (docs/architecture.md §15). Election only avoids wasted work: each slot is
filled by `fill_schedule_slot`, whose `(schedule_id, slot)` key lets the database accept one
execution per slot, so two leaders at once (a lock lost in a network split, two installations
of the lock) still create one execution.

Which slots are due is decided here: those after the schedule's last filled slot up to now,
thinned by the schedule's `MissedSlots` policy. A schedule never filled starts from the moment
a scheduler first saw it (nothing is back-filled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import datetime

from flowexec.errors import StoreUnavailable
from flowexec.model import check_id, check_positive
from flowexec.policy import LEADER_LEASE_INTERVALS
from flowexec.runtime.schedules import MissedSlots, Schedule
from flowexec.runtime.settings import RECOVERY_LOCK_ID
from flowexec.store.protocol import ExecutionStore

log = logging.getLogger("flowexec.scheduler")

SCHEDULER_LOCK_ID = RECOVERY_LOCK_ID + 1
"""The store lock that elects the scheduling leader (next to the recovery lock's id)."""
SCHEDULER_INTERVAL_S = 1.0
"""How often the scheduler looks for due slots: a slot starts at most this late."""
MOST_SLOTS_PER_TICK = 1000
"""`MissedSlots.ALL` catches up at most this many slots of a schedule per tick."""

Clock = Callable[[], Awaitable[datetime]]


class Scheduler:
    """Fills due cron slots when this instance holds the scheduler lock."""

    def __init__(
        self,
        store: ExecutionStore,
        schedules: Sequence[Schedule],
        *,
        worker_id: str,
        interval_s: float = SCHEDULER_INTERVAL_S,
        lock_id: int = SCHEDULER_LOCK_ID,
        clock: Clock | None = None,
    ) -> None:
        """`clock` is when "now" is for slot arithmetic; by default the database's clock."""
        self.store = store
        self.schedules = list(schedules)
        self.worker_id = check_id(worker_id, "worker_id")
        self.interval_s = check_positive(interval_s, "interval_s")
        self.lock_id = lock_id
        self.is_leader = False
        self._clock: Clock = store.now if clock is None else clock
        self._seen: dict[str, datetime] = {}
        """When this instance last looked at each schedule, leader or not."""
        self._stopping = asyncio.Event()

    async def tick(self) -> list[str]:
        """Fill the due slots if this instance is (or becomes) the leader; the ids created."""
        self.is_leader = await self.store.try_acquire_recovery_lock(
            self.lock_id, lease_s=LEADER_LEASE_INTERVALS * self.interval_s
        )
        if not self.is_leader:
            now = await self._clock()
            for schedule in self.schedules:
                self._seen[schedule.schedule_id] = now
            return []
        return await self.fill_due_slots(leader=self.lock_id)

    async def fill_due_slots(self, *, leader: int | None = None) -> list[str]:
        """Create one execution for each due slot no one filled yet; without election unless
        `leader` (a lock id) fences the writes by its term."""
        now = await self._clock()
        last = await self.store.get_last_slots([s.schedule_id for s in self.schedules])
        created: list[str] = []
        for schedule in self.schedules:
            seen = self._seen.get(schedule.schedule_id, now)
            self._seen[schedule.schedule_id] = now
            filled = last.get(schedule.schedule_id)
            if filled is None:
                since = seen
            elif schedule.missed is MissedSlots.SKIP:
                since = max(filled.slot_at, seen)  # only what came due while watched
            else:
                since = filled.slot_at
            due = schedule.due_slots(since, now, most=MOST_SLOTS_PER_TICK)
            if schedule.missed is MissedSlots.LATEST:
                due = due[-1:]
            for slot in due:
                execution = schedule.execution()
                if await self.store.fill_schedule_slot(
                    schedule.schedule_id, slot, execution, leader=leader
                ):
                    created.append(execution.id)
                    log.info(
                        "schedule %s: slot %s runs as %s",
                        schedule.schedule_id, slot.isoformat(), execution.id,
                        extra={"execution_id": execution.id, "flow_id": schedule.flow_id},
                    )
        return created

    async def run(self) -> None:
        """Tick every `interval_s` until `stop()`; a database outage is logged and outlived."""
        try:
            while not self._stopping.is_set():
                try:
                    await self.tick()
                except StoreUnavailable as exc:
                    self.is_leader = False
                    log.warning("scheduling skipped: %s", exc)
                except Exception as exc:
                    self.is_leader = False
                    log.exception(
                        "scheduling failed, trying again in %g s: %s", self.interval_s, exc
                    )
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval_s)
        finally:
            self.is_leader = False
            with suppress(StoreUnavailable):
                await self.store.release_recovery_lock(self.lock_id)

    def stop(self) -> None:
        self._stopping.set()
