"""/api/agents/{id}/crm-connection, pipeline-settings and integrations against synced sandbox data."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from integrations.kommo.sandbox import KommoSandbox, SandboxAccount
from salesflow.settings import Settings
from tests.harness import Tenant
from tests.kommo_support import connect_directly

Sessions = async_sessionmaker[AsyncSession]
MISSING = "00000000-0000-4000-8000-000000000000"


async def _agent(client: httpx.AsyncClient, tenant: Tenant) -> str:
    r = await client.post("/api/agents", json={"name": "Closer"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _connected_and_synced(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings, sessions: Sessions,
    temporal_client: Client,
) -> tuple[SandboxAccount, uuid.UUID]:
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    sync = await client.post("/api/integrations/kommo/sync/pipelines", headers=tenant.headers)
    await temporal_client.get_workflow_handle(sync.json()["workflow_id"]).result()
    return account, connection.id


async def test_pipeline_settings_are_validated_against_synced_statuses(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions, temporal_client: Client,
) -> None:
    agent = await _agent(client, tenant)
    path = f"/api/agents/{agent}/pipeline-settings"
    unconfigured = (await client.get(path, headers=tenant.headers)).json()
    assert unconfigured["configured"] is False
    assert unconfigured["pipeline_id"] is None
    # Nothing synced yet: no pipeline id can be valid.
    assert (await client.post(path, json={"pipeline_id": 1}, headers=tenant.headers)).status_code == 400

    account, _ = await _connected_and_synced(client, tenant, kommo_sandbox, settings, sessions, temporal_client)
    pipeline = account.main_pipeline_id
    working = [account.status_id("Initial contact"), account.status_id("Negotiation")]
    body = {"pipeline_id": pipeline, "stage_ids": working, "qualified_status_id": account.status_id("Decision"),
            "handoff_status_id": 142, "lost_status_id": 143}
    saved = await client.post(path, json=body, headers=tenant.headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["configured"] is True
    assert saved.json()["stage_ids"] == working
    assert (await client.get(path, headers=tenant.headers)).json()["handoff_status_id"] == 142

    other = kommo_sandbox.add_pipeline(account, "Other", ["Elsewhere"])
    bad = await client.post(path, headers=tenant.headers,
                            json={**body, "stage_ids": [working[0], other.statuses[0].id], "lost_status_id": 999})
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"body.stage_ids.1", "body.lost_status_id"}
    assert (await client.post(path, json={"pipeline_id": "x"}, headers=tenant.headers)).status_code == 400
    assert (await client.post(path, json={**body, "agent_id": agent}, headers=tenant.headers)).status_code == 400


async def test_agent_crm_endpoints_need_auth_a_valid_id_and_the_callers_agent(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, kommo_sandbox: KommoSandbox,
    settings: Settings, sessions: Sessions,
) -> None:
    theirs = await _agent(client, other_tenant)
    _, connection = await connect_directly(sessions, settings, kommo_sandbox, other_tenant.org_id)
    integration = connection.id
    calls = [
        ("GET", "crm-connection", None), ("GET", "pipeline-settings", None),
        ("POST", "pipeline-settings", {"pipeline_id": 1}), ("GET", "integrations", None),
        ("GET", f"integrations/{integration}", None), ("PATCH", f"integrations/{integration}", {"enabled": False}),
        ("POST", f"integrations/{integration}/install", None), ("POST", f"integrations/{integration}/sync", None),
    ]
    for method, sub, body in calls:
        for agent in (theirs, MISSING):
            path = f"/api/agents/{agent}/{sub}"
            assert (await client.request(method, path, json=body)).status_code == 401, path
            r = await client.request(method, path, json=body, headers=tenant.headers)
            assert r.status_code == 404, (method, path, r.text)
        bad = await client.request(method, f"/api/agents/not-a-uuid/{sub}", json=body, headers=tenant.headers)
        assert bad.status_code == 400
    # The caller's own agent, but another org's integration id: 404 as well.
    mine = await _agent(client, tenant)
    for method, sub, body in calls[4:]:
        r = await client.request(method, f"/api/agents/{mine}/{sub}", json=body, headers=tenant.headers)
        assert r.status_code == 404, (method, sub)


async def test_install_links_the_connection_to_the_agent_and_syncs(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions, temporal_client: Client,
) -> None:
    agent = await _agent(client, tenant)
    base = f"/api/agents/{agent}"
    assert (await client.get(f"{base}/integrations", headers=tenant.headers)).json()["items"] == []
    before = (await client.get(f"{base}/crm-connection", headers=tenant.headers)).json()
    assert before["connection"]["status"] == "not_connected"
    assert before["integration_id"] is None

    account, integration = await _connected_and_synced(client, tenant, kommo_sandbox, settings, sessions,
                                                       temporal_client)
    [listed] = (await client.get(f"{base}/integrations", headers=tenant.headers)).json()["items"]
    assert listed["id"] == str(integration)
    assert listed["installed"] is False
    assert listed["kind"] == "kommo"
    bad_cursor = await client.get(f"{base}/integrations", params={"cursor": "x"}, headers=tenant.headers)
    assert bad_cursor.status_code == 400
    not_yet = await client.patch(f"{base}/integrations/{integration}", json={"enabled": False}, headers=tenant.headers)
    assert not_yet.status_code == 409
    assert (await client.post(f"{base}/integrations/{integration}/sync", headers=tenant.headers)).status_code == 409

    installed = await client.post(f"{base}/integrations/{integration}/install", headers=tenant.headers)
    assert installed.status_code == 202, installed.text
    assert installed.json()["integration"]["installed"] is True
    assert installed.json()["workflow_id"] == f"crm-sync/{tenant.org_id}"
    await temporal_client.get_workflow_handle(installed.json()["workflow_id"]).result()
    again = await client.post(f"{base}/integrations/{integration}/install", headers=tenant.headers)
    assert again.status_code == 202

    user_id = next(iter(account.users))
    patched = await client.patch(f"{base}/integrations/{integration}", headers=tenant.headers,
                                 json={"enabled": False, "settings": {"responsible_user_id": user_id,
                                                                     "lead_tag": "ai"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False
    assert patched.json()["settings"]["responsible_user_id"] == user_id
    unknown_user = await client.patch(f"{base}/integrations/{integration}", headers=tenant.headers,
                                      json={"settings": {"responsible_user_id": 12345}})
    assert unknown_user.status_code == 400
    assert (await client.patch(f"{base}/integrations/{integration}", json={"kind": "x"},
                               headers=tenant.headers)).status_code == 400
    fetched = (await client.get(f"{base}/integrations/{integration}", headers=tenant.headers)).json()
    assert fetched["settings"]["lead_tag"] == "ai"

    synced = await client.post(f"{base}/integrations/{integration}/sync", headers=tenant.headers)
    assert synced.status_code == 202
    assert synced.json()["integration"]["last_sync_workflow_id"] == synced.json()["workflow_id"]
    await temporal_client.get_workflow_handle(synced.json()["workflow_id"]).result()

    view = (await client.get(f"{base}/crm-connection", headers=tenant.headers)).json()
    assert view["installed"] is True
    assert view["integration_id"] == str(integration)
    assert view["connection"]["connected"] is True
