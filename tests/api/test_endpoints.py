"""Every endpoint over real HTTP, on both backends, and problem+json on every error path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from flowexec.api import API_PREFIX, create_app
from flowexec.model import new_execution
from flowexec.store.limits import MAX_CREATE_BATCH
from tests.conftest import StoreFactory

from .conftest import TEST_SETTINGS, Api, serving
from .runs import claim, complete

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, kind: str, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"] == f"urn:flowexec:problem:{kind}"
    assert body["title"]
    for word in words:
        assert word in body["detail"], body
    assert "Traceback" not in response.text


async def test_create_read_and_act_on_an_execution(api: Api) -> None:
    async with api.client() as http:
        created = await http.post(
            "/executions",
            json={"flow_id": "orders", "integration": {"k": 1}, "options": {"debug": True},
                  "events": [{"event_name": "paid", "payload": {"n": 2}}], "start": False},
        )
        assert created.status_code == 201
        execution_id = created.json()["id"]
        got = (await http.get(f"/executions/{execution_id}")).json()
        assert (got["flow_id"], got["owner_id"], got["status"]) == ("orders", "alice", "created")
        assert got["integration"] == {"k": 1} and got["options"] == {"debug": True}
        assert got["available_at"] is None
        assert (await http.post(f"/executions/{execution_id}/start")).json() == {"started": True}
        assert (await http.post(f"/executions/{execution_id}/start")).json() == {"started": False}
        assert (await http.get(f"/executions/{execution_id}/claim")).json() == {"claim": None}
        epoch = await claim(api.store, execution_id)
        held = (await http.get(f"/executions/{execution_id}/claim")).json()["claim"]
        assert (held["epoch"], held["status"]) == (epoch, "active")
        paused = await http.post(f"/executions/{execution_id}/pause", json={"reason": "look"})
        assert paused.json()["status"] == "paused"
        resumed = await http.post(f"/executions/{execution_id}/resume")
        assert resumed.json()["status"] == "running"
        retried = await http.post(f"/executions/{execution_id}/retry", json={"reason": "again"})
        assert retried.json()["status"] == "created"
        stopped = await http.post(f"/executions/{execution_id}/stop", json={"reason": "enough"})
        assert (stopped.json()["status"], stopped.json()["error_message"]) == ("stopped", "enough")
        assert (await http.get(f"/executions/{execution_id}/recoveries")).json() == {"items": []}
        tree = (await http.get(f"/executions/{execution_id}/tree")).json()["nodes"]
        assert [(n["id"], n["level"]) for n in tree] == [(execution_id, 0)]
        events = (await http.get(f"/executions/{execution_id}/events")).json()
        types = [e["type"] for e in events["items"]]
        assert types == ["flow:started", "flow:paused", "flow:resumed", "flow:requeued",
                         "flow:stopped"]
        assert events["next_index"] == 5
        only = await http.get(
            f"/executions/{execution_id}/events", params={"types": "flow:paused,flow:stopped"}
        )
        assert [e["index"] for e in only.json()["items"]] == [1, 4]
        later = await http.get(f"/executions/{execution_id}/events?from_index=3&limit=1")
        assert [e["index"] for e in later.json()["items"]] == [3]
        assert later.json()["next_index"] == 4


async def test_batches_listing_pages_flows_and_stats(api: Api) -> None:
    async with api.client() as http, api.client("admin") as admin:
        batch = await http.post(
            "/executions/batch", json={"flow_id": "mail", "items": [{}, {"integration": {}}]}
        )
        assert batch.status_code == 201 and len(batch.json()["ids"]) == 2
        for_bob = await admin.post(
            "/executions/batch", json={"flow_id": "mail", "items": [{"owner_id": "bob"}]}
        )
        assert for_bob.status_code == 201
        seen: list[str] = []
        cursor = None
        while True:
            page = (await http.get("/flows/mail/executions", params={
                "limit": 1, **({"cursor": cursor} if cursor else {})})).json()
            seen += [r["execution"]["id"] for r in page["items"]]
            assert all(r["levels"] == 0 and r["total_nested"] == 0 for r in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(batch.json()["ids"])
        everyone = (await admin.get("/flows/mail/executions")).json()["items"]
        assert len(everyone) == 3
        await admin.post(f"/executions/{seen[0]}/stop")
        stopped = (await admin.get("/flows/mail/executions?status=stopped")).json()["items"]
        assert [r["execution"]["id"] for r in stopped] == [seen[0]]
        assert_problem(
            await http.get("/flows/mail/executions?status=done"), 422, "invalid-request", "status"
        )
        assert (await http.get("/flows")).json() == {
            "items": [{"flow_id": "mail", "counts_by_status": {"created": 1, "stopped": 1}}]
        }
        counts = (await admin.get("/flows")).json()["items"][0]["counts_by_status"]
        assert counts == {"created": 2, "stopped": 1}
        stats = (await admin.get("/stats")).json()
        assert stats["counts_by_status"]["created"] == 2
        assert_problem(await http.get("/stats"), 403, "admin-only")
    async with httpx.AsyncClient(base_url=api.base_url) as anonymous:
        assert (await anonymous.get("/api/v1/healthz")).json() == {"status": "ok"}
        assert (await anonymous.get("/api/v1/readyz")).json() == {"status": "ok"}
        spec = (await anonymous.get("/api/v1/openapi.json")).json()
        assert "/api/v1/executions/{execution_id}/events" in spec["paths"]


async def test_a_tree_lists_children_and_listing_counts_them(api: Api) -> None:
    async with api.client() as http:
        root_id = (await http.post("/executions", json={"flow_id": "tree"})).json()["id"]
        epoch = await claim(api.store, root_id)
        root = await api.store.get(root_id)
        assert root is not None
        child = new_execution("leaf", "alice", parent=root)
        await api.store.create(child, fence=("api-test-worker", epoch))
        nodes = (await http.get(f"/executions/{root_id}/tree")).json()["nodes"]
        assert [(n["id"], n["parent_id"], n["level"]) for n in nodes] == [
            (root_id, None, 0), (child.id, root_id, 1)
        ]
        listed = (await http.get("/flows/tree/executions")).json()["items"][0]
        assert (listed["levels"], listed["total_nested"]) == (1, 1)
        await complete(api.store, root_id, epoch)


async def test_problem_json_on_every_error_path(api: Api) -> None:
    async with api.client() as http, api.client(None) as anonymous:
        created = (await http.post("/executions", json={"flow_id": "f", "start": False}))
        execution_id = created.json()["id"]
        assert_problem(await anonymous.get("/flows"), 401, "unauthorized", "Bearer")
        assert_problem(await http.get("/nowhere"), 404, "not-found", "/api/v1/nowhere")
        assert_problem(await http.get("/executions/missing"), 404, "execution-not-found")
        assert_problem(await http.delete("/executions/x"), 405, "method-not-allowed", "DELETE")
        assert_problem(await http.post("/executions", json={}), 422, "invalid-request", "flow_id")
        assert_problem(
            await http.post("/executions", json={"flow_id": "f", "typo": 1}), 422,
            "invalid-request", "typo",
        )
        assert_problem(
            await http.post("/executions", content=b"{not json",
                            headers={"content-type": "application/json"}),
            422, "invalid-request",
        )
        assert_problem(await http.post("/executions", json={"flow_id": ""}), 400, "invalid-input")
        assert_problem(
            await http.post("/executions", json={"flow_id": "f", "options": {"x": 1}}),
            400, "invalid-input", "unknown keys",
        )
        assert_problem(
            await http.post(f"/executions/{execution_id}/resume"), 409, "invalid-transition"
        )
        assert_problem(await http.get("/flows/f/executions?cursor=zz"), 400, "invalid-input")
        assert_problem(await http.get("/flows/f/executions?limit=0"), 422, "invalid-request")
        assert_problem(
            await http.get(f"/executions/{execution_id}/events?from_index=-1"), 422,
            "invalid-request",
        )
        assert_problem(
            await http.get(
                f"/executions/{execution_id}/events",
                headers={"Accept": "text/event-stream", "Last-Event-ID": "abc"},
            ),
            400, "invalid-input", "Last-Event-ID",
        )
        big = {"flow_id": "f", "integration": {"blob": "x" * TEST_SETTINGS.max_body_bytes}}
        assert_problem(await http.post("/executions", json=big), 413, "body-too-large")

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(TEST_SETTINGS.max_body_bytes // 1000 + 2):
                yield b" " * 1000

        streamed = await http.post(
            "/executions", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_problem(streamed, 413, "body-too-large")
        too_many = {"flow_id": "f", "items": [{}] * (MAX_CREATE_BATCH + 1)}
        async with api.client("admin") as admin:
            assert_problem(
                await admin.post("/executions/batch", json=too_many), 422, "invalid-request",
                f"at most {MAX_CREATE_BATCH} items",
            )
        assert_problem(
            await http.post("/executions/batch", json={"flow_id": "f", "items": [{"events": 1}]}),
            422, "invalid-request",
        )
        refused = await http.post(
            "/executions/batch", json={"flow_id": "f", "items": [{}, {"options": {"x": 1}}]}
        )
        assert_problem(refused, 400, "invalid-input", "items[1]")
        assert refused.json()["index"] == 1



async def test_an_unavailable_store_is_503(api: Api, store_factory: StoreFactory) -> None:
    lost = await store_factory()
    async with serving(create_app(lost, settings=TEST_SETTINGS)) as base_url:
        await lost.close()
        async with httpx.AsyncClient(base_url=base_url + API_PREFIX) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert_problem(await http.get("/readyz"), 503, "store-unavailable", "closed")
            bearer = {"Authorization": f"Bearer {api.tokens['alice']}"}
            assert_problem(
                await http.get("/flows", headers=bearer), 503, "store-unavailable", "closed"
            )



async def test_metrics_beside_the_api_parse_and_count_the_queue(api: Api) -> None:
    """`/metrics` (no token, as scrapers expect): Prometheus text with the store's queue."""
    from prometheus_client.parser import text_string_to_metric_families

    async with api.client("alice") as http:
        for _ in range(2):
            created = await http.post("/executions", json={"flow_id": "metered"})
            assert created.status_code == 201
    async with httpx.AsyncClient(base_url=api.base_url) as anonymous:
        scraped = await anonymous.get("/metrics")
    assert scraped.status_code == 200
    depth = [
        sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "flowexec_queue_depth" and "metered" in sample.labels.values()
    ]
    assert depth == [2.0]
