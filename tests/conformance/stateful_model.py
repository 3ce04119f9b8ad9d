"""The plain-Python model the state machine of test_stateful.py checks a real store against,
and the machine's base: the store it drives, on its own event loop, and the model's helpers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine

from flowexec import open_store
from flowexec.model import Execution, ExecutionStatus
from flowexec.store.protocol import ExecutionStore

S = ExecutionStatus
T = TypeVar("T")

WORKERS = ("w1", "w2", "w3")
FLOWS = ("flow-x", "flow-y")
WHO = st.sampled_from(["holder", "holder", *WORKERS])
"""A worker for a call: most often the one holding the execution, when someone does."""
FLOW_FILTERS: tuple[list[str] | None, ...] = (None, ["flow-x"], ["flow-y"], list(FLOWS))
LEASE_MS = 600_000
MAX_EXECUTIONS = 8  # few, so that the rules keep meeting the same executions
BASE = datetime(2024, 6, 1, tzinfo=UTC)


@dataclass
class Model:
    """What the store must say about one execution."""

    execution: Execution
    created_started: bool
    status: ExecutionStatus = S.CREATED
    runnable: bool = True
    ran: bool = False
    finished: bool = False
    failure_count: int = 0
    epoch: int = 0
    holder: str | None = None
    started_at: datetime | None = None  # the store's value, once seen: it must never change

    @property
    def claimable(self) -> bool:
        return self.status is S.RUNNING or (self.status is S.CREATED and self.runnable)

    def holds(self, fence: tuple[str, int] | None) -> bool:
        return fence is None or (self.holder == fence[0] and self.epoch == fence[1])

    def lose_claim(self) -> None:
        self.holder = None


class ModelledStore(RuleBasedStateMachine):
    """A store opened on its own event loop and table prefix, with the model beside it."""

    url: ClassVar[str]
    new_prefix: ClassVar[Callable[[], str]]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store: ExecutionStore = self.run(
            open_store(self.url, table_prefix=type(self).new_prefix())
        )
        self.model: dict[str, Model] = {}
        self.created = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    # ------------------------------------------------------------ helpers

    def stamp(self, execution: Execution) -> Execution:
        """Creation times in pairs of equal instants, so listing must break ties by id."""
        at = BASE + timedelta(seconds=self.created // 2)
        self.created += 1
        return dataclasses.replace(execution, created_at=at, updated_at=at)

    def children_of(self, execution_id: str) -> list[str]:
        return [i for i, m in self.model.items() if m.execution.parent_execution_id == execution_id]

    def subtree(self, execution_id: str) -> list[tuple[int, str]]:
        out, frontier, level = [], [execution_id], 0
        while frontier:
            out += [(level, i) for i in frontier]
            frontier = [c for i in frontier for c in self.children_of(i)]
            level += 1
        return sorted(out)

    def fence_for(self, m: Model | None, choice: str) -> tuple[str, int] | None:
        if choice == "none":
            return None
        holder = m.holder if m is not None and m.holder else "w1"
        epoch = max(m.epoch if m is not None else 0, 1)
        if choice == "holder":
            return holder, epoch
        if choice == "stale":
            return holder, (epoch - 1 if epoch > 1 else epoch + 1)
        return next(w for w in WORKERS if w != holder), epoch

    def worker(self, execution_id: str, who: str) -> str:
        m = self.model.get(execution_id)
        if who == "holder":
            return m.holder if m is not None and m.holder else WORKERS[0]
        return who

    def took(self, m: Model, worker: str, epoch: int) -> None:
        assert epoch == m.epoch + 1, f"epoch {epoch} after {m.epoch}: not one more"
        m.epoch = epoch
        m.holder = worker
