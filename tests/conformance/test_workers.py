"""The worker registry on every backend: register, keep alive, remove, sweep the dead, and what
is decided from it (queued flows no live worker serves, flows served recently)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from flowexec.errors import ValidationError
from flowexec.model.workers import KnownFlow, WorkerRegistration
from flowexec.store.protocol import ExecutionStore
from flowexec.store.workers import SERVED_RECENTLY, served_recently
from tests.conformance.helpers import (
    FLOW,
    OTHER_FLOW,
    WORKER,
    assert_times_utc,
    create_root,
    start_running,
    wait_until_past,
)

TTL_MS = 60_000


def registration(worker_id: str = WORKER, *flows: str) -> WorkerRegistration:
    return WorkerRegistration(
        worker_id=worker_id,
        host="host-a",
        pid=4242,
        flow_ids=flows or (FLOW,),
        concurrency=8,
        version="1.2.3",
    )


async def test_a_registered_worker_is_listed_live_with_what_it_said(store: ExecutionStore) -> None:
    before = await store.now()
    info = await store.register_worker(registration(WORKER, OTHER_FLOW, FLOW), ttl_ms=TTL_MS)
    [listed] = await store.get_workers()
    assert listed == info
    assert (listed.worker_id, listed.host, listed.pid, listed.concurrency, listed.version) == (
        WORKER, "host-a", 4242, 8, "1.2.3"
    )
    assert listed.flow_ids == (FLOW, OTHER_FLOW) and listed.live
    assert listed.started_at >= before and listed.last_seen_at == listed.started_at
    assert listed.expires_at == listed.last_seen_at + timedelta(milliseconds=TTL_MS)
    assert_times_utc(listed)
    known = {f.flow_id: f for f in await store.get_known_flows()}
    assert set(known) == {FLOW, OTHER_FLOW}
    assert known[FLOW].live_workers == 1 and known[FLOW].last_served_at == listed.started_at


async def test_registering_again_replaces_the_row(store: ExecutionStore) -> None:
    await store.register_worker(registration(WORKER, FLOW), ttl_ms=TTL_MS)
    again = dataclasses.replace(registration(WORKER, OTHER_FLOW), pid=99)
    await store.register_worker(again, ttl_ms=TTL_MS)
    [listed] = await store.get_workers()
    assert (listed.pid, listed.flow_ids) == (99, (OTHER_FLOW,))
    known = {f.flow_id: f.live_workers for f in await store.get_known_flows()}
    assert known == {FLOW: 0, OTHER_FLOW: 1}


async def test_keeping_alive_pushes_presence_on_and_renews_only_held_leases(
    store: ExecutionStore,
) -> None:
    first = await store.register_worker(registration(), ttl_ms=TTL_MS)
    held, lease = await start_running(store, worker_id=WORKER, timeout_ms=1_000)
    other, other_lease = await start_running(store, worker_id="someone-else")
    kept = await store.keep_worker_alive(
        WORKER, [(held.id, lease.epoch), (other.id, other_lease.epoch)],
        lease_ms=TTL_MS, ttl_ms=2 * TTL_MS,
    )
    assert kept.present and kept.renewed == {held.id}
    [listed] = await store.get_workers()
    assert listed.last_seen_at > first.last_seen_at
    assert listed.expires_at == listed.last_seen_at + timedelta(milliseconds=2 * TTL_MS)
    renewed = await store.get_claim_for_execution(held.id)
    assert renewed is not None and renewed.expires_at > lease.expires_at

    alone = await store.keep_worker_alive(WORKER, [], lease_ms=TTL_MS, ttl_ms=TTL_MS)
    assert alone.present and alone.renewed == set()
    stranger = await store.keep_worker_alive("not-registered", [], lease_ms=TTL_MS, ttl_ms=TTL_MS)
    assert not stranger.present
    assert [w.worker_id for w in await store.get_workers()] == [WORKER]


async def test_a_graceful_stop_removes_the_worker_and_its_flows_stay_known(
    store: ExecutionStore,
) -> None:
    registered = await store.register_worker(registration(), ttl_ms=TTL_MS)
    await store.register_worker(registration("worker-2", OTHER_FLOW), ttl_ms=TTL_MS)
    assert await store.remove_worker(WORKER)
    assert not await store.remove_worker(WORKER)
    assert [w.worker_id for w in await store.get_workers()] == ["worker-2"]
    [flow] = [f for f in await store.get_known_flows() if f.flow_id == FLOW]
    assert flow.live_workers == 0 and flow.last_served_at > registered.started_at


async def test_the_sweep_removes_only_workers_whose_presence_expired(
    store: ExecutionStore,
) -> None:
    dead = await store.register_worker(registration("dead-1", FLOW), ttl_ms=100)
    await store.register_worker(registration("dead-2", FLOW), ttl_ms=100)
    await store.register_worker(registration("alive", OTHER_FLOW), ttl_ms=TTL_MS)
    await wait_until_past(store, dead.expires_at + timedelta(milliseconds=100))
    live = {w.worker_id: w.live for w in await store.get_workers()}
    assert live == {"dead-1": False, "dead-2": False, "alive": True}  # listed until swept

    assert await store.remove_dead_workers() == ["dead-1", "dead-2"]
    assert await store.remove_dead_workers() == []
    assert [w.worker_id for w in await store.get_workers()] == ["alive"]
    [flow] = [f for f in await store.get_known_flows() if f.flow_id == FLOW]
    assert flow.live_workers == 0 and flow.last_served_at > dead.expires_at
    gone = await store.keep_worker_alive("dead-1", [], lease_ms=TTL_MS, ttl_ms=TTL_MS)
    assert not gone.present  # the worker learns it must register again


async def test_unserved_queues_are_queued_flows_no_live_worker_serves(
    store: ExecutionStore,
) -> None:
    for _ in range(2):
        await create_root(store, flow_id=FLOW)
    await create_root(store, flow_id=OTHER_FLOW)
    await create_root(store, flow_id="not-started", start=False)  # not queued
    await start_running(store, flow_id="running")  # not queued
    assert await store.get_unserved_queues() == {FLOW: 2, OTHER_FLOW: 1}

    await store.register_worker(registration(WORKER, FLOW), ttl_ms=TTL_MS)
    expired = await store.register_worker(registration("gone", OTHER_FLOW), ttl_ms=100)
    await wait_until_past(store, expired.expires_at)
    assert await store.get_unserved_queues() == {OTHER_FLOW: 1}


async def test_served_recently_means_a_live_worker_or_one_within_a_day(
    store: ExecutionStore,
) -> None:
    now = await store.now()
    flows = [
        KnownFlow("live", now - 2 * SERVED_RECENTLY, live_workers=1),
        KnownFlow("recent", now - SERVED_RECENTLY / 2, live_workers=0),
        KnownFlow("stale", now - 2 * SERVED_RECENTLY, live_workers=0),
    ]
    assert [served_recently(f, flows, now) for f in ("live", "recent", "stale", "typo")] == [
        True, True, False, False
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"worker_id": ""}, "worker_id"),
        ({"flow_ids": ()}, "at least one flow"),
        ({"flow_ids": "flow-a"}, "sequence of flow ids"),
        ({"flow_ids": ("ok", " bad ")}, "flow_id"),
        ({"pid": -1}, "pid"),
        ({"concurrency": 0}, "concurrency"),
        ({"host": ""}, "host"),
        ({"version": "x" * 300}, "version"),
    ],
)
async def test_a_bad_registration_is_refused_and_changes_nothing(
    store: ExecutionStore, changes: dict[str, object], message: str
) -> None:
    bad = dataclasses.replace(registration(), **changes)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=message):
        await store.register_worker(bad, ttl_ms=TTL_MS)
    assert await store.get_workers() == [] and await store.get_known_flows() == []


async def test_bad_registry_arguments_are_refused(store: ExecutionStore) -> None:
    with pytest.raises(ValidationError, match="WorkerRegistration"):
        await store.register_worker({"worker_id": WORKER}, ttl_ms=TTL_MS)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="ttl_ms"):
        await store.register_worker(registration(), ttl_ms=0)
    with pytest.raises(ValidationError, match="lease_ms"):
        await store.keep_worker_alive(WORKER, [], lease_ms=-1, ttl_ms=TTL_MS)
    with pytest.raises(ValidationError, match="pairs"):
        await store.keep_worker_alive(WORKER, ["x"], lease_ms=1, ttl_ms=1)  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="worker_id"):
        await store.remove_worker("")
    assert await store.get_workers() == []
