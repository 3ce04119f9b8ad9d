"""The worker's control poll: one status read for all its runs, so that stop and pause arrive.

Clients stop, pause and resume an execution by writing its status (docs/architecture.md §3);
the poll reads the statuses of every running run in one `get_statuses` and hands each answer
to the run's `RunControl`: stop cancels, pause holds, resume releases.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

from flowexec.runtime.control import RunControl
from flowexec.runtime.logs import BoundLogger
from flowexec.runtime.tasks import every
from flowexec.store.protocol import ExecutionStore


class PolledRun(Protocol):
    """What the control poll needs of a run."""

    @property
    def execution_id(self) -> str: ...

    @property
    def control(self) -> RunControl: ...

    @property
    def is_polled(self) -> bool: ...

    @property
    def log(self) -> BoundLogger: ...


class ControlPoller:
    def __init__(
        self,
        store: ExecutionStore,
        *,
        interval_s: float,
        runs: Callable[[], Collection[PolledRun]],
        log: BoundLogger,
    ) -> None:
        self._store = store
        self._interval_s = interval_s
        self._runs = runs
        self._log = log

    async def run(self) -> None:
        """Poll every `interval_s` until cancelled."""
        await every(self._interval_s, self.poll, name="control poll", log=self._log)

    async def poll(self) -> None:
        runs = [run for run in self._runs() if run.is_polled]
        if not runs:
            return
        versions = {run.execution_id: run.control.version for run in runs}
        statuses = await self._store.get_statuses(list(versions))
        for run in runs:
            if not run.is_polled:
                continue
            change = run.control.observe(
                statuses.get(run.execution_id), versions[run.execution_id]
            )
            if change is not None:
                run.log.info("%s by a client", change)
