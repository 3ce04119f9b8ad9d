"""Cron schedules on both backends: one execution per slot whatever the number of schedulers,
and the missed-slot policies after downtime. Slot arithmetic runs on a clock the test moves;
the uniqueness of a slot is the database's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from flowexec.errors import ConfigError
from flowexec.runtime.scheduler import Scheduler
from flowexec.runtime.schedules import MissedSlots, Schedule
from flowexec.store.protocol import ExecutionStore

from .helpers import FLOW, S, StoreFactory

START = datetime(2026, 12, 24, 17, 58, 30, tzinfo=UTC)
"""Between slots of an every-five-minutes schedule: the next is 18:00."""


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    async def __call__(self) -> datetime:
        return self.now


def every_five_minutes(missed: MissedSlots = MissedSlots.LATEST) -> Schedule:
    return Schedule.checked("*/5 * * * *", flow_id=FLOW, schedule_id="report", missed=missed)


async def test_two_schedulers_on_two_stores_fill_a_slot_once(
    store: ExecutionStore, other_store: ExecutionStore
) -> None:
    clock = MovableClock(START)
    schedulers = [
        Scheduler(s, [every_five_minutes()], worker_id=f"w{n}", clock=clock)
        for n, s in enumerate((store, other_store))
    ]
    assert await asyncio.gather(*(s.fill_due_slots() for s in schedulers)) == [[], []]
    clock.now = START + timedelta(minutes=2)
    created = await asyncio.gather(*(s.fill_due_slots() for s in schedulers))
    assert sorted(len(c) for c in created) == [0, 1]
    [execution_id] = created[0] or created[1]
    slot = (await store.get_last_slots(["report"]))["report"]
    assert slot.slot_at == datetime(2026, 12, 24, 18, 0, tzinfo=UTC)
    assert slot.execution_id == execution_id
    execution = await store.get(execution_id)
    assert execution is not None and execution.status is S.CREATED
    assert len(await store.get_root_executions(FLOW)) == 1


async def slots_after_downtime(store: ExecutionStore, missed: MissedSlots) -> list[datetime]:
    """A scheduler fills the 18:00 slot and stops; another starts at 18:17, after three
    missed slots (18:05, 18:10, 18:15), then runs on to 18:21. The slots filled, in order."""
    clock = MovableClock(START)
    first = Scheduler(store, [every_five_minutes(missed)], worker_id="before", clock=clock)
    await first.fill_due_slots()
    clock.now = START + timedelta(minutes=2)
    assert len(await first.fill_due_slots()) == 1
    clock.now = datetime(2026, 12, 24, 18, 17, tzinfo=UTC)
    second = Scheduler(store, [every_five_minutes(missed)], worker_id="after", clock=clock)
    filled = [(await store.get_last_slots(["report"]))["report"].slot_at]
    for now in (clock.now, datetime(2026, 12, 24, 18, 21, tzinfo=UTC)):
        clock.now = now
        before = len(await store.get_root_executions(FLOW, limit=100))
        created = await second.fill_due_slots()
        assert len(await store.get_root_executions(FLOW, limit=100)) == before + len(created)
        if created:
            filled.append((await store.get_last_slots(["report"]))["report"].slot_at)
        if missed is MissedSlots.ALL and now.minute == 17:
            assert len(created) == 3
    return filled


def at(minute: int) -> datetime:
    return datetime(2026, 12, 24, 18, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("missed", "expected"),
    [
        (MissedSlots.LATEST, [at(0), at(15), at(20)]),
        (MissedSlots.ALL, [at(0), at(15), at(20)]),
        (MissedSlots.SKIP, [at(0), at(20)]),
    ],
)
async def test_a_scheduler_stopped_over_three_slots_follows_the_policy(
    store: ExecutionStore, missed: MissedSlots, expected: list[datetime]
) -> None:
    assert await slots_after_downtime(store, missed) == expected
    executions = len(await store.get_root_executions(FLOW, limit=100))
    assert executions == {MissedSlots.LATEST: 3, MissedSlots.ALL: 5, MissedSlots.SKIP: 2}[missed]


async def test_only_the_elected_scheduler_fills_slots(
    store: ExecutionStore, store_factory: StoreFactory
) -> None:
    clock = MovableClock(START)
    stores = [store, await store_factory()]
    schedulers = [
        Scheduler(s, [every_five_minutes()], worker_id=f"w{n}", clock=clock, lock_id=4242)
        for n, s in enumerate(stores)
    ]
    await schedulers[0].tick()
    await schedulers[1].tick()
    assert [s.is_leader for s in schedulers] == [True, False]
    clock.now = START + timedelta(minutes=2)
    assert await schedulers[1].tick() == []
    assert len(await schedulers[0].tick()) == 1
    running = asyncio.create_task(schedulers[0].run())
    schedulers[0].stop()
    await running  # a stopped scheduler gives the lock back
    clock.now = START + timedelta(minutes=7)
    assert len(await schedulers[1].tick()) == 1
    assert schedulers[1].is_leader


@pytest.mark.parametrize(
    ("cron", "options", "message"),
    [
        ("*/5 * * *", {}, "cron expression"),
        ("0 9 * * *", {"timezone": "Mars/Olympus"}, "time zone"),
        ("0 9 * * *", {"missed": "twice"}, "missed must be one of"),
    ],
)
def test_a_bad_schedule_is_refused_when_declared(
    cron: str, options: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Schedule.checked(cron, flow_id=FLOW, **options)  # type: ignore[arg-type]


def test_slots_follow_the_time_zone_across_a_dst_change() -> None:
    berlin = Schedule.checked("30 2 * * *", flow_id=FLOW, timezone="Europe/Berlin")
    # 2026-03-29 has no 02:30 in Berlin: cronsim runs that day's slot at 03:00 local (01:00 UTC)
    slots = berlin.due_slots(
        datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC), most=10
    )
    assert slots == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]
