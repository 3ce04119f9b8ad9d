"""API tokens and flow counts, on both backends: hashes only, exact matches, typed refusals."""

from __future__ import annotations

import pytest

from flowexec.errors import ValidationError
from flowexec.model import new_execution
from flowexec.runtime.client import Client
from flowexec.store.protocol import ExecutionStore
from flowexec.store.tokens import TokenFacade


def tokens(store: ExecutionStore) -> TokenFacade:
    """The store with its primitives in reach, to look at what is stored."""
    assert isinstance(store, TokenFacade)
    return store


async def test_a_created_token_authenticates_as_its_owner(store: ExecutionStore) -> None:
    issued = await tokens(store).create_token("alice", name="ci")
    found = await tokens(store).authenticate(issued.bearer)
    assert found == issued.token
    assert (found.owner_id, found.name, found.admin) == ("alice", "ci", False)
    admin = await tokens(store).create_token("ops", admin=True)
    assert admin.token.name == admin.token.token_id
    assert (await tokens(store).authenticate(admin.bearer)) == admin.token
    assert [t.name for t in await tokens(store).list_tokens()] == sorted(["ci", admin.token.name])


async def test_a_wrong_secret_or_malformed_token_is_refused(store: ExecutionStore) -> None:
    issued = await tokens(store).create_token("alice")
    head, _, secret = issued.bearer.rpartition("_")
    tampered = f"{head}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    for bearer in [tampered, "", "fxt_", issued.bearer + "x", "Bearer " + issued.bearer]:
        assert await tokens(store).authenticate(bearer) is None


async def test_only_a_hash_of_the_secret_is_stored(store: ExecutionStore) -> None:
    issued = await tokens(store).create_token("alice", name="ci")
    secret = issued.bearer.rpartition("_")[2]
    rows = await tokens(store)._token_rows()
    stored = await tokens(store)._token_row(issued.token.token_id)
    assert stored is not None
    assert secret not in repr(rows) + repr(stored)
    assert stored["secret_hash"] != secret


async def test_revoking_a_token_refuses_it_at_once(store: ExecutionStore) -> None:
    issued = await tokens(store).create_token("alice", name="ci")
    assert await tokens(store).revoke_token("ci") is True
    assert await tokens(store).authenticate(issued.bearer) is None
    assert await tokens(store).revoke_token("ci") is False
    assert await tokens(store).list_tokens() == []


async def test_a_taken_name_or_bad_input_is_refused_and_writes_nothing(
    store: ExecutionStore,
) -> None:
    await tokens(store).create_token("alice", name="ci")
    with pytest.raises(ValidationError, match="'ci' exists"):
        await tokens(store).create_token("bob", name="ci")
    for name in ["", "has space", "x" * 65, "-dash"]:
        with pytest.raises(ValidationError, match="token name"):
            await tokens(store).create_token("bob", name=name)
    with pytest.raises(ValidationError, match="owner_id"):
        await tokens(store).create_token("")
    with pytest.raises(ValidationError, match="admin"):
        await tokens(store).create_token("bob", admin="yes")  # type: ignore[arg-type]
    assert [t.owner_id for t in await tokens(store).list_tokens()] == ["alice"]


async def test_flow_counts_group_by_flow_and_status_per_owner(store: ExecutionStore) -> None:
    for flow, owner in [("a", "alice"), ("a", "alice"), ("a", "bob"), ("b", "bob")]:
        await store.create(new_execution(flow, owner), start=True)
    counts = store.get_flow_counts
    assert await counts() == {"a": {"created": 3}, "b": {"created": 1}}
    assert await counts(owner_id="alice") == {"a": {"created": 2}}
    assert await counts(owner_id="nobody") == {}
    with pytest.raises(ValidationError, match="owner_id"):
        await counts(owner_id="")


async def test_finished_counts_are_the_roots_that_finished_recently_per_flow(
    store: ExecutionStore,
) -> None:
    client = Client(store)
    done = [await client.create(flow, owner_id="alice") for flow in ("a", "a", "b")]
    waiting = await client.create("a", owner_id="alice")
    parent = await store.get(waiting)
    assert parent is not None
    child = new_execution("a", "alice", parent=parent)
    await store.create(child)
    for execution_id in [*done, child.id]:
        await client.stop(execution_id)
    assert await store.get_finished_counts(60) == {"a": 2, "b": 1}
    for bad in (0, 86_401, 1.5):
        with pytest.raises(ValidationError, match="within_s"):
            await store.get_finished_counts(bad)  # type: ignore[arg-type]


async def test_recoveries_are_counted_within_a_window(store: ExecutionStore) -> None:
    execution_id = await Client(store).create("a", owner_id="alice")
    assert await store.count_recoveries(3600) == 0
    await store.record_recovery(execution_id, "sweeper", "lease expired")
    assert await store.count_recoveries(3600) == 1
    with pytest.raises(ValidationError, match="within_s"):
        await store.count_recoveries(0)
