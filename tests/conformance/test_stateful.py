"""A Hypothesis state machine drives a real store and checks it against a plain-Python model.

The model holds, per execution: status, whether it is runnable (started), whether it ever ran,
whether it finished, its failure count, the last claim epoch and the worker holding a live lease.
Leases are long (minutes), so "live" only ends by release, requeue, finish or retry; expiry by
time is covered by the example-based tests.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from flowexec.errors import ClaimLost, ExecutionNotFound, InvalidTransition
from flowexec.model import (
    ClaimStatus,
    ExecutionStatus,
    RootExecution,
    UpdateExecutionStatusParams,
    can_transition,
    new_execution,
)

from .stateful_model import (
    FLOW_FILTERS,
    FLOWS,
    LEASE_MS,
    MAX_EXECUTIONS,
    WHO,
    WORKERS,
    Model,
    ModelledStore,
)

S = ExecutionStatus

class StoreMachine(ModelledStore):
    executions = Bundle("executions")

    # ------------------------------------------------------------ creating

    def add_root(self, flow: str, start: bool) -> str:
        execution = self.stamp(new_execution(flow, "owner"))
        self.run(self.store.create(execution, start=start))
        self.model[execution.id] = Model(execution, created_started=start, runnable=start)
        return execution.id

    @initialize(
        target=executions,
        roots=st.lists(st.tuples(st.sampled_from(FLOWS), st.booleans()), min_size=1, max_size=4),
    )
    def first_roots(self, roots: list[tuple[str, bool]]) -> object:
        return multiple(*(self.add_root(flow, start) for flow, start in roots))

    @precondition(lambda self: len(self.model) < MAX_EXECUTIONS)
    @rule(target=executions, flow=st.sampled_from(FLOWS), start=st.booleans())
    def create_root(self, flow: str, start: bool) -> str:
        return self.add_root(flow, start)

    @precondition(lambda self: len(self.model) < MAX_EXECUTIONS)
    @rule(target=executions, parent=executions, start=st.booleans())
    def create_child(self, parent: str, start: bool) -> object:
        p = self.model.get(parent)
        if p is None:
            ghost = new_execution(FLOWS[0], "owner", id=parent)
            with pytest.raises(ExecutionNotFound):
                self.run(self.store.create(new_execution(FLOWS[0], "owner", parent=ghost)))
            return multiple()
        if p.status.is_terminal:
            return multiple()
        child = self.stamp(new_execution(p.execution.flow_id, "owner", parent=p.execution))
        self.run(self.store.create(child, start=start))
        self.model[child.id] = Model(child, created_started=start, runnable=start)
        return child.id

    @rule(execution_id=executions)
    def start_execution(self, execution_id: str) -> None:
        m = self.model.get(execution_id)
        if m is None or m.status is not S.CREATED:
            return
        assert self.run(self.store.start_execution(execution_id)) is (not m.runnable)
        m.runnable = True

    # ------------------------------------------------------------ claims

    @rule(execution_id=executions, who=WHO)
    def claim_execution(self, execution_id: str, who: str) -> None:
        worker = self.worker(execution_id, who)
        got = self.run(self.store.claim_execution(execution_id, worker, LEASE_MS))
        m = self.model.get(execution_id)
        if m is None or not m.claimable or m.holder not in (None, worker):
            assert got is None
            return
        assert got is not None
        assert (got.execution_id, got.worker_id, got.status) == (
            execution_id,
            worker,
            ClaimStatus.ACTIVE,
        )
        self.took(m, worker, got.epoch)

    @rule(
        worker=st.sampled_from(WORKERS),
        limit=st.integers(1, 4),
        flows=st.sampled_from(FLOW_FILTERS),
    )
    def claim_next(self, worker: str, limit: int, flows: list[str] | None) -> None:
        candidates = {
            i
            for i, m in self.model.items()
            if m.status is S.CREATED
            and m.runnable
            and m.holder is None
            and (flows is None or m.execution.flow_id in flows)
        }
        available = {}
        if len(candidates) > limit:
            for i in candidates:
                got = self.run(self.store.get(i))
                assert got is not None
                available[i] = got.available_at
        claims = self.run(self.store.claim_next(worker, LEASE_MS, limit=limit, flow_ids=flows))
        ids = [c.execution_id for c in claims]
        assert len(ids) == len(set(ids)) == min(limit, len(candidates))
        assert set(ids) <= candidates
        if available:
            rest = candidates - set(ids)
            assert max(available[i] for i in ids) <= min(available[i] for i in rest)
        for c in claims:
            assert c.worker_id == worker and c.status is ClaimStatus.ACTIVE
            self.took(self.model[c.execution_id], worker, c.epoch)

    @rule(
        execution_id=executions,
        who=WHO,
        epoch_choice=st.sampled_from(["none", "holder", "stale"]),
    )
    def release(self, execution_id: str, who: str, epoch_choice: str) -> None:
        worker = self.worker(execution_id, who)
        m = self.model.get(execution_id)
        fence = self.fence_for(m, epoch_choice)
        epoch = None if fence is None else fence[1]
        released = self.run(self.store.release_execution(execution_id, worker, epoch=epoch))
        expected = m is not None and m.holder == worker and (epoch is None or epoch == m.epoch)
        assert released is expected
        if m is not None and expected:
            m.lose_claim()

    @rule(
        execution_id=executions,
        who=WHO,
        epoch_choice=st.sampled_from(["none", "holder", "stale"]),
        batch=st.booleans(),
    )
    def extend(self, execution_id: str, who: str, epoch_choice: str, batch: bool) -> None:
        worker = self.worker(execution_id, who)
        if batch:  # every execution ever claimed, under its last epoch (or a stale one)
            stale = epoch_choice == "stale"
            pairs = [(i, m.epoch + int(stale)) for i, m in self.model.items() if m.epoch]
            held = self.run(self.store.extend_claims(worker, pairs, LEASE_MS))
            expected_ids = {i for i, m in self.model.items() if m.holder == worker}
            assert held == (set() if stale else expected_ids)
            return
        m = self.model.get(execution_id)
        fence = self.fence_for(m, epoch_choice)
        epoch = None if fence is None else fence[1]
        extended = self.run(self.store.extend_claim(execution_id, worker, LEASE_MS, epoch=epoch))
        expected = m is not None and m.holder == worker and (epoch is None or epoch == m.epoch)
        assert extended is expected

    # ------------------------------------------------------------ status

    @rule(
        execution_id=executions,
        status=st.sampled_from(list(ExecutionStatus)),
        fence_choice=st.sampled_from(["none", "holder", "stale", "other"]),
    )
    def update_status(self, execution_id: str, status: ExecutionStatus, fence_choice: str) -> None:
        target = status
        m = self.model.get(execution_id)
        fence = self.fence_for(m, fence_choice)
        params = UpdateExecutionStatusParams(
            execution_id=execution_id,
            status=target,
            worker_id=None if fence is None else fence[0],
            epoch=None if fence is None else fence[1],
        )
        if m is None:
            assert self.run(self.store.update_execution_status(params)) is False
            return
        legal, held = can_transition(m.status, target), m.holds(fence)
        if legal and held:
            assert self.run(self.store.update_execution_status(params)) is True
        else:
            expected: tuple[type[Exception], ...] = ()
            if not legal:
                expected += (InvalidTransition,)
            if not held:
                expected += (ClaimLost,)
            with pytest.raises(expected):
                self.run(self.store.update_execution_status(params))
            return
        m.status = target
        if target is S.RUNNING:
            m.ran = True
        elif target is S.CREATED:
            m.runnable = True
            m.lose_claim()
        elif target.is_terminal:
            m.finished = True
            m.lose_claim()

    @rule(
        execution_id=executions,
        fence_choice=st.sampled_from(["holder", "stale", "other"]),
        count_failure=st.booleans(),
    )
    def retry(self, execution_id: str, fence_choice: str, count_failure: bool) -> None:
        m = self.model.get(execution_id)
        fence = self.fence_for(m, fence_choice)
        assert fence is not None
        call = self.store.retry_execution(
            execution_id,
            worker_id=fence[0],
            epoch=fence[1],
            reason="model retry",
            count_failure=count_failure,
        )
        if m is None:
            with pytest.raises(ExecutionNotFound):
                self.run(call)
            return
        if not m.holds(fence):
            expected: tuple[type[Exception], ...] = (ClaimLost,)
            if m.status is not S.RUNNING:
                expected += (InvalidTransition,)
            with pytest.raises(expected):
                self.run(call)
            return
        if m.status is not S.RUNNING:  # retrying a run that is not running: not specified
            call.close()
            return
        result = self.run(call)
        m.status = S.CREATED
        m.runnable = True
        m.failure_count += int(count_failure)
        m.lose_claim()
        assert result.status is S.CREATED
        assert result.failure_count == m.failure_count

    @rule(
        worker=st.sampled_from(WORKERS),
        outcome=st.sampled_from(
            [
                "complete",
                "fail",
                "stop",
                "pause",
                "pause_release",
                "retry",
                "retry_uncounted",
                "release",
                "keep",
            ]
        ),
    )
    def work(self, worker: str, outcome: str) -> None:
        """A worker's whole turn: take the next execution, run it, end the attempt somehow."""
        claims = self.run(self.store.claim_next(worker, LEASE_MS))
        expected = [
            i
            for i, m in self.model.items()
            if m.status is S.CREATED and m.runnable and m.holder is None
        ]
        assert len(claims) == min(1, len(expected))
        if not claims:
            return
        lease = claims[0]
        m = self.model[lease.execution_id]
        self.took(m, worker, lease.epoch)
        fenced = {"worker_id": worker, "epoch": lease.epoch}
        run = UpdateExecutionStatusParams(lease.execution_id, S.RUNNING, **fenced)  # type: ignore[arg-type]
        assert self.run(self.store.update_execution_status(run)) is True
        m.status, m.ran = S.RUNNING, True
        if outcome in ("complete", "fail", "stop", "pause", "pause_release"):
            target = {
                "complete": S.COMPLETED,
                "fail": S.FAILED,
                "stop": S.STOPPED,
                "pause": S.PAUSED,
                "pause_release": S.PAUSED,
            }[outcome]
            end = UpdateExecutionStatusParams(lease.execution_id, target, **fenced)  # type: ignore[arg-type]
            assert self.run(self.store.update_execution_status(end)) is True
            m.status = target
            if target.is_terminal:
                m.finished = True
                m.lose_claim()
        elif outcome in ("retry", "retry_uncounted"):
            counted = outcome == "retry"
            result = self.run(
                self.store.retry_execution(
                    lease.execution_id, reason="crashed", count_failure=counted, **fenced
                )  # type: ignore[arg-type]
            )
            m.status, m.runnable = S.CREATED, True
            m.failure_count += int(counted)
            m.lose_claim()
            assert (result.status, result.failure_count) == (S.CREATED, m.failure_count)
        if outcome in ("release", "pause_release"):
            assert self.run(
                self.store.release_execution(lease.execution_id, worker, epoch=lease.epoch)
            )
            m.lose_claim()

    # ------------------------------------------------------------ delete and reads

    @rule(execution_id=executions)
    def remove(self, execution_id: str) -> None:
        """Delete an execution with its subtree."""
        existed = execution_id in self.model
        gone = [i for _, i in self.subtree(execution_id)] if existed else []
        assert self.run(self.store.delete(execution_id)) is existed
        for i in gone:
            del self.model[i]

    @rule(flow=st.sampled_from(FLOWS), limit=st.integers(1, 5))
    def list_roots(self, flow: str, limit: int) -> None:
        roots = [
            m.execution
            for m in self.model.values()
            if m.execution.flow_id == flow and m.execution.parent_execution_id is None
        ]
        roots.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        listed: list[RootExecution] = []
        page = self.run(self.store.get_root_executions(flow, limit))
        while page:
            assert len(page) <= limit
            listed += page
            page = self.run(self.store.get_root_executions(flow, limit, page[-1]))
        assert [r.execution.id for r in listed] == [e.id for e in roots]
        for r in listed:
            tree = self.subtree(r.execution.id)
            assert r.levels == max(level for level, _ in tree)
            assert r.total_nested == len(tree) - 1

    @rule(execution_id=executions)
    def read(self, execution_id: str) -> None:
        """Read one execution, its children and its subtree; creating it again changes nothing."""
        m = self.model.get(execution_id)
        if m is not None:  # same content: a no-op, whatever happened to it since
            self.run(self.store.create(m.execution, start=m.created_started))
        got = self.run(self.store.get(execution_id))
        nodes = self.run(self.store.get_execution_tree(execution_id))
        children = self.run(self.store.get_child_executions(execution_id))
        if m is None:
            assert got is None and nodes == [] and children == []
            return
        assert got is not None
        assert got.content_differences(m.execution) == []
        assert got.status is m.status
        assert got.failure_count == m.failure_count
        assert got.processing_worker_id == m.holder
        assert (got.completed_at is not None) is m.finished
        assert (got.started_at is not None) is m.ran
        if m.started_at is None:
            m.started_at = got.started_at
        else:
            assert got.started_at == m.started_at, "started_at changed"
        if m.status is S.CREATED and not m.runnable:
            assert got.available_at is None
        assert [(n.level, n.id) for n in nodes] == self.subtree(execution_id)
        for n in nodes[1:]:
            assert n.parent_id == self.model[n.id].execution.parent_execution_id
        assert sorted(e.id for e in children) == sorted(self.children_of(execution_id))

    @invariant()
    def statuses_and_live_claims_agree(self) -> None:
        assert self.run(self.store.expire_old_claims()) == 0  # every lease is long
        statuses = self.run(self.store.get_statuses(list(self.model)))
        assert statuses == {i: m.status for i, m in self.model.items()}
        active = self.run(self.store.get_active_claims())
        assert {(c.execution_id, c.worker_id, c.epoch) for c in active} == {
            (i, m.holder, m.epoch) for i, m in self.model.items() if m.holder
        }


def test_store_follows_the_model(store_url: str, fresh_prefixes: Callable[[], str]) -> None:
    machine = type(
        "StoreMachineOnThisBackend",
        (StoreMachine,),
        {"url": store_url, "new_prefix": staticmethod(fresh_prefixes)},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=80,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
