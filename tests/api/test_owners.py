"""Owner rules: a token sees and changes only its owner's executions; another owner's answers
exactly as a missing one, on every endpoint; an admin may do everything; revoked means 401."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Api
from .runs import claim

MISSING = "EX-does-not-exist"

READS = ["", "/tree", "/claim", "/recoveries", "/events"]
ACTIONS = ["start", "stop", "pause", "resume", "retry"]


async def _answer(http: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> tuple:
    response = await http.request(method, path, **kwargs)  # type: ignore[arg-type]
    return response.status_code, response.headers.get("content-type"), response.text


async def test_another_owners_execution_is_indistinguishable_from_a_missing_one(
    api: Api,
) -> None:
    async with api.client("alice") as alice, api.client("bob") as bob:
        execution_id = (await alice.post("/executions", json={"flow_id": "f"})).json()["id"]
        await claim(api.store, execution_id)
        calls: list[tuple[str, str, dict[str, object]]] = [
            ("GET", f"/executions/{{}}{suffix}", {}) for suffix in READS
        ]
        calls.append(("GET", "/executions/{}/events", {"headers": {"Accept": "text/event-stream"}}))
        calls += [("POST", f"/executions/{{}}/{action}", {}) for action in ACTIONS]
        for method, template, kwargs in calls:
            theirs = await _answer(bob, method, template.format(execution_id), **kwargs)
            missing = await _answer(bob, method, template.format(MISSING), **kwargs)
            assert theirs[0] == 404, (template, theirs)
            assert theirs == (missing[0], missing[1], missing[2].replace(MISSING, execution_id))
        assert (await alice.get(f"/executions/{execution_id}")).json()["status"] == "running"
        assert (await bob.get("/flows/f/executions")).json()["items"] == []
        assert (await bob.get("/flows")).json()["items"] == []


async def test_a_token_creates_for_its_own_owner_and_an_admin_for_anyone(api: Api) -> None:
    async with api.client("bob") as bob, api.client("admin") as admin:
        refused = await bob.post("/executions", json={"flow_id": "f", "owner_id": "alice"})
        assert refused.status_code == 403
        assert refused.json()["type"] == "urn:flowexec:problem:owner-forbidden"
        in_batch = await bob.post(
            "/executions/batch", json={"flow_id": "f", "items": [{}, {"owner_id": "alice"}]}
        )
        assert in_batch.status_code == 403
        assert await api.store.get_flow_counts() == {}
        own = await bob.post("/executions", json={"flow_id": "f", "owner_id": "bob"})
        assert own.status_code == 201
        for_alice = (
            await admin.post("/executions", json={"flow_id": "f", "owner_id": "alice"})
        ).json()["id"]
        assert (await admin.get(f"/executions/{for_alice}")).json()["owner_id"] == "alice"
        assert (await admin.post(f"/executions/{for_alice}/stop")).json()["status"] == "stopped"
        assert len((await admin.get("/flows/f/executions")).json()["items"]) == 2
        assert (await bob.get(f"/executions/{for_alice}")).status_code == 404


@pytest.mark.parametrize(
    "bad", ["Basic abc", "Bearer fxt_0000000000000000_" + "A" * 43, "Bearer x"]
)
async def test_unknown_tokens_are_refused(api: Api, bad: str) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        response = await http.get("/api/v1/flows", headers={"Authorization": bad})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_revoked_token_is_refused_from_its_next_request(api: Api) -> None:
    async with api.client("bob") as bob:
        assert (await bob.get("/flows")).status_code == 200
        assert await api.store.revoke_token("bob")
        refused = await bob.get("/flows")
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the token is unknown or revoked"
