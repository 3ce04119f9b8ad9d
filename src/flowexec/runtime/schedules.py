"""Cron schedules declared in code: which flow runs at which slots, and after downtime what.

A schedule's slots come from its cron expression in its time zone, computed by `cronsim`
(daylight-saving transitions behave as cronsim defines them: a slot in a skipped hour runs at
the first valid time after it, a slot in a repeated hour runs once). Slots are stored in UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from flowexec.errors import ConfigError
from flowexec.model import (
    JSON,
    MAX_PRIORITY,
    MIN_PRIORITY,
    Execution,
    check_id,
    check_int_range,
    check_json,
    new_execution,
)

DEFAULT_SCHEDULE_OWNER = "scheduler"


class MissedSlots(enum.StrEnum):
    """What a scheduler does with slots that came due while no scheduler ran."""

    LATEST = "latest"
    """Run the most recent missed slot once (the default)."""
    SKIP = "skip"
    """Run none of them; carry on from the next slot."""
    ALL = "all"
    """Run every one of them, oldest first."""


@dataclass(frozen=True, slots=True)
class Schedule:
    schedule_id: str
    cron: str
    flow_id: str
    owner_id: str = DEFAULT_SCHEDULE_OWNER
    integration: dict[str, JSON] | None = None
    timezone: str = "UTC"
    missed: MissedSlots = MissedSlots.LATEST
    priority: int = 0

    @classmethod
    def checked(
        cls,
        cron: str,
        *,
        flow_id: str,
        schedule_id: str | None = None,
        owner_id: str = DEFAULT_SCHEDULE_OWNER,
        integration: Mapping[str, JSON] | None = None,
        timezone: str = "UTC",
        missed: MissedSlots | str = MissedSlots.LATEST,
        priority: int = 0,
    ) -> Schedule:
        """A schedule whose every part was checked; a mistake is a `ConfigError` at once,
        not a scheduler failing later."""
        if not isinstance(cron, str):
            raise ConfigError(f"a cron expression is a string, not {type(cron).__name__}")
        try:
            CronSim(cron, datetime.now(UTC))
        except CronSimError as exc:
            raise ConfigError(f"bad cron expression {cron!r}: {exc}") from None
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(f"unknown time zone {timezone!r}") from None
        try:
            policy = MissedSlots(missed)
        except ValueError:
            choices = ", ".join(m.value for m in MissedSlots)
            raise ConfigError(f"missed must be one of {choices}, not {missed!r}") from None
        if integration is not None:
            check_json(dict(integration), "integration")
        return cls(
            schedule_id=check_id(
                f"{flow_id}@{cron}" if schedule_id is None else schedule_id, "schedule_id"
            ),
            cron=cron,
            flow_id=check_id(flow_id, "flow_id"),
            owner_id=check_id(owner_id, "owner_id"),
            integration=None if integration is None else dict(integration),
            timezone=timezone,
            missed=policy,
            priority=check_int_range(priority, "priority", MIN_PRIORITY, MAX_PRIORITY),
        )

    def slots_after(self, moment: datetime) -> Iterator[datetime]:
        """The slots strictly after `moment`, in UTC, oldest first (endless)."""
        for slot in CronSim(self.cron, moment.astimezone(ZoneInfo(self.timezone))):
            yield slot.astimezone(UTC)

    def due_slots(self, after: datetime, until: datetime, *, most: int) -> list[datetime]:
        """The slots in (`after`, `until`], at most `most` of them, oldest first."""
        due: list[datetime] = []
        for slot in self.slots_after(after):
            if slot > until or len(due) == most:
                break
            due.append(slot)
        return due

    def next_slot(self, after: datetime) -> datetime:
        return next(self.slots_after(after))

    def execution(self) -> Execution:
        """A new execution for one of this schedule's slots."""
        return new_execution(
            self.flow_id, self.owner_id, integration=self.integration, priority=self.priority
        )
