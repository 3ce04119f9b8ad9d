"""The worker registry's records: who runs which flows, and which flows have been served.

A worker process registers itself when it starts and is live while its presence has not
expired (`expires_at`, on the database clock), which its heartbeat pushes on. Flows keep
when a worker last served them (registered, or left the registry), so that a flow nobody runs
now but somebody ran recently can be told apart from a typo (docs/architecture.md §6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flowexec.errors import ValidationError
from flowexec.model.checks import check_id, check_int_range, check_text

MAX_PID = 2**31 - 1
MAX_WORKER_CONCURRENCY = 1_000_000
MAX_HOST_LENGTH = 255


@dataclass(frozen=True, slots=True)
class WorkerRegistration:
    """What a worker process says about itself when it starts."""

    worker_id: str
    host: str
    pid: int
    flow_ids: tuple[str, ...]
    concurrency: int
    version: str

    def checked(self) -> WorkerRegistration:
        """The same registration, or a `ValidationError` naming the field that is wrong."""
        if isinstance(self.flow_ids, str) or not isinstance(self.flow_ids, Sequence):
            raise ValidationError("flow_ids must be a sequence of flow ids")
        flows = tuple(sorted({check_id(f, "flow_id") for f in self.flow_ids}))
        if not flows:
            raise ValidationError("a worker registers at least one flow")
        return WorkerRegistration(
            worker_id=check_id(self.worker_id, "worker_id"),
            host=check_text(self.host, "host", max_length=MAX_HOST_LENGTH),
            pid=check_int_range(self.pid, "pid", 0, MAX_PID),
            flow_ids=flows,
            concurrency=check_int_range(self.concurrency, "concurrency", 1,
                                        MAX_WORKER_CONCURRENCY),
            version=check_text(self.version, "version", max_length=MAX_HOST_LENGTH),
        )


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One registered worker, as the registry holds it; `live` is judged on the database clock."""

    worker_id: str
    host: str
    pid: int
    flow_ids: tuple[str, ...]
    concurrency: int
    version: str
    started_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    live: bool


@dataclass(frozen=True, slots=True)
class KnownFlow:
    """A flow some worker served: until when (registering, or leaving the registry), and how
    many live workers serve it now."""

    flow_id: str
    last_served_at: datetime
    live_workers: int
