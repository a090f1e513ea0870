"""/api/agents through every layer: validation, tenancy, pagination, soft delete."""

from __future__ import annotations

import uuid

import httpx

from tests.harness import Tenant

MISSING = "00000000-0000-4000-8000-000000000000"


async def _create(client: httpx.AsyncClient, tenant: Tenant, **body: object) -> dict[str, object]:
    payload = {"name": "Closer", **body}
    r = await client.post("/api/agents", json=payload, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_create_agent_returns_a_draft_owned_by_the_callers_org(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _create(client, tenant, persona="Helpful SDR", language="ru")
    assert agent["status"] == "draft"
    assert agent["org_id"] == str(tenant.org_id)
    assert agent["language"] == "ru"
    fetched = await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)
    assert fetched.json()["persona"] == "Helpful SDR"


async def test_agent_endpoints_require_a_token(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/api/agents"), ("POST", "/api/agents"), ("GET", f"/api/agents/{MISSING}"),
                         ("PATCH", f"/api/agents/{MISSING}"), ("DELETE", f"/api/agents/{MISSING}"),
                         ("PATCH", f"/api/agents/{MISSING}/status")]:
        r = await client.request(method, path, json={})
        assert r.status_code == 401, (method, path)
        assert r.headers["content-type"] == "application/problem+json"


async def test_a_forged_token_is_rejected(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/agents", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401


async def test_create_agent_rejects_bad_input_with_field_paths(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post("/api/agents", json={"name": "", "language": "english"}, headers=tenant.headers)
    assert r.status_code == 400
    problem = r.json()
    assert problem["status"] == 400
    fields = {e["field"] for e in problem["errors"]}
    assert {"body.name", "body.language"} <= fields


async def test_create_agent_refuses_mass_assignment_of_org_id(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    r = await client.post("/api/agents", json={"name": "x", "org_id": str(other_tenant.org_id)}, headers=tenant.headers)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "body.org_id"


async def test_list_agents_paginates_with_a_cursor_and_filters(client: httpx.AsyncClient, tenant: Tenant) -> None:
    names = [f"Agent {i}" for i in range(5)]
    for name in names:
        await _create(client, tenant, name=name)
    await _create(client, tenant, name="Live one", status="active")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/agents", params=params, headers=tenant.headers)).json()
        seen += [a["name"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([*names, "Live one"])
    active = (await client.get("/api/agents", params={"status": "active"}, headers=tenant.headers)).json()
    assert [a["name"] for a in active["items"]] == ["Live one"]
    by_name = (await client.get("/api/agents", params={"name": "agent 3"}, headers=tenant.headers)).json()
    assert [a["name"] for a in by_name["items"]] == ["Agent 3"]


async def test_list_agents_rejects_bad_paging(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await client.get("/api/agents", params={"limit": 500}, headers=tenant.headers)).status_code == 400
    assert (await client.get("/api/agents", params={"cursor": "garbage!"}, headers=tenant.headers)).status_code == 400


async def test_another_tenants_agent_is_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    agent = await _create(client, other_tenant)
    path = f"/api/agents/{agent['id']}"
    assert (await client.get(path, headers=tenant.headers)).status_code == 404
    assert (await client.patch(path, json={"name": "mine"}, headers=tenant.headers)).status_code == 404
    assert (await client.patch(f"{path}/status", json={"status": "active"}, headers=tenant.headers)).status_code == 404
    assert (await client.delete(path, headers=tenant.headers)).status_code == 404
    listed = (await client.get("/api/agents", headers=tenant.headers)).json()
    assert agent["id"] not in [a["id"] for a in listed["items"]]
    still = await client.get(path, headers=other_tenant.headers)
    assert still.json()["name"] == "Closer"


async def test_missing_agent_is_not_found(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(method, f"/api/agents/{uuid.uuid4()}", json={"name": "x"}, headers=tenant.headers)
        assert r.status_code == 404
        assert r.json()["title"] == "Not Found"
    r = await client.patch(f"/api/agents/{MISSING}/status", json={"status": "paused"}, headers=tenant.headers)
    assert r.status_code == 404


async def test_a_malformed_id_is_a_bad_request(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.get("/api/agents/not-a-uuid", headers=tenant.headers)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "path.id"


async def test_update_agent_changes_only_sent_fields(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _create(client, tenant, tone="formal")
    r = await client.patch(f"/api/agents/{agent['id']}", json={"name": "Renamed"}, headers=tenant.headers)
    assert r.status_code == 200
    assert r.json()["name"] == "Renamed"
    assert r.json()["tone"] == "formal"
    bad = await client.patch(f"/api/agents/{agent['id']}", json={"status": "active"}, headers=tenant.headers)
    assert bad.status_code == 400


async def test_status_moves_between_draft_active_and_paused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _create(client, tenant)
    for target in ("active", "paused", "draft"):
        r = await client.patch(f"/api/agents/{agent['id']}/status", json={"status": target}, headers=tenant.headers)
        assert r.status_code == 200
        assert r.json()["status"] == target
    bad = await client.patch(f"/api/agents/{agent['id']}/status", json={"status": "deleted"}, headers=tenant.headers)
    assert bad.status_code == 400


async def test_deleted_agent_disappears_from_reads(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent = await _create(client, tenant)
    assert (await client.delete(f"/api/agents/{agent['id']}", headers=tenant.headers)).status_code == 204
    assert (await client.get(f"/api/agents/{agent['id']}", headers=tenant.headers)).status_code == 404
    assert (await client.delete(f"/api/agents/{agent['id']}", headers=tenant.headers)).status_code == 404
