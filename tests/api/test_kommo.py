"""Kommo connection endpoints through every layer, against the Kommo sandbox over real HTTP."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from db.base import utcnow
from db.models import KommoOAuthState
from integrations.kommo.sandbox import KommoSandbox
from salesflow.settings import Settings
from tests.harness import Tenant
from tests.kommo_support import connect_directly, get_connection, new_account
from workflows.crm_sync import CrmSyncWorkflow
from workflows.ids import TASK_QUEUE, onboarding_id
from workflows.onboarding import OnboardingWorkflow
from workflows.onboarding_models import OnboardingInput, OnboardingStep

Sessions = async_sessionmaker[AsyncSession]
BASE = "/api/integrations/kommo"


async def _consent(client: httpx.AsyncClient, tenant: Tenant, subdomain: str) -> dict[str, str]:
    """Start OAuth through our API, then approve on the sandbox's consent page; returns the redirect query."""
    start = await client.post(f"{BASE}/oauth/start", headers=tenant.headers)
    assert start.status_code == 200, start.text
    # The sandbox-only ``subdomain`` picks the account, as a user would on Kommo's consent page.
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.json()["authorize_url"] + f"&subdomain={subdomain}")
    assert consent.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(consent.headers["location"]).query).items()}
    assert query["state"] == start.json()["state"]
    return query


async def test_oauth_round_trip_connects_stores_encrypted_tokens_and_syncs(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions, temporal_client: Client,
) -> None:
    account = new_account(kommo_sandbox, settings)
    query = await _consent(client, tenant, account.subdomain)
    r = await client.post(f"{BASE}/oauth/callback", headers=tenant.headers, json={
        "code": query["code"], "state": query["state"], "referer": query["referer"], "client_id": query["client_id"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["connection"]["status"] == "connected"
    assert (body["connection"]["account_id"], body["connection"]["subdomain"]) == (account.id, account.subdomain)
    assert body["workflow_id"] == f"crm-sync/{tenant.org_id}"
    assert body["temporal_url"].endswith(f"crm-sync%2F{tenant.org_id}")

    row = await get_connection(sessions, tenant.org_id)
    assert row is not None
    assert row.access_token_enc is not None
    assert row.refresh_token_enc is not None
    # At rest only ciphertext: the plaintext token appears nowhere in the row.
    issued = [g for t, g in kommo_sandbox._access.items() if g.account_id == account.id]
    assert issued
    assert all(t not in (row.access_token_enc, row.refresh_token_enc) for t in kommo_sandbox._access)
    assert row.chat_scope_id == account.scope_id

    result = await temporal_client.get_workflow_handle_for(CrmSyncWorkflow.run, body["workflow_id"]).result()
    assert result.pipelines == 1
    assert result.users == 2
    assert result.custom_fields == 4
    pipelines = (await client.get("/api/crm/pipelines", headers=tenant.headers)).json()["items"]
    assert [p["name"] for p in pipelines] == ["Sales"]
    assert [s["kommo_id"] for s in pipelines[0]["statuses"]][-2:] == [142, 143]

    status = (await client.get(f"{BASE}/status", headers=tenant.headers)).json()
    assert status["connected"] is True
    assert status["needs_reconnect"] is False


async def test_oauth_state_is_single_use_bound_to_the_org_and_short_lived(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, kommo_sandbox: KommoSandbox,
    settings: Settings, sessions: Sessions,
) -> None:
    account = new_account(kommo_sandbox, settings)
    query = await _consent(client, other_tenant, account.subdomain)
    callback = {"code": query["code"], "state": query["state"], "referer": query["referer"]}
    # Another org's state: 400, and it stays usable by its owner.
    foreign = await client.post(f"{BASE}/oauth/callback", headers=tenant.headers, json=callback)
    assert foreign.status_code == 400
    assert foreign.json()["errors"][0]["field"] == "body.state"
    ok = await client.post(f"{BASE}/oauth/callback", headers=other_tenant.headers, json=callback)
    assert ok.status_code == 200, ok.text
    replay = await client.post(f"{BASE}/oauth/callback", headers=other_tenant.headers, json=callback)
    assert replay.status_code == 400

    # Expired: consent done, but the state outlived its TTL.
    query = await _consent(client, tenant, account.subdomain)
    async with sessions() as session:
        await session.execute(update(KommoOAuthState).where(KommoOAuthState.org_id == tenant.org_id)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    expired = await client.post(f"{BASE}/oauth/callback", headers=tenant.headers,
                                json={"code": query["code"], "state": query["state"], "referer": query["referer"]})
    assert expired.status_code == 400
    async with sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(KommoOAuthState)
                                      .where(KommoOAuthState.state_hash == query["state"]))
    assert stored == 0  # only hashes are stored


async def test_oauth_callback_rejects_a_foreign_domain_and_a_bad_code(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings
) -> None:
    account = new_account(kommo_sandbox, settings)
    query = await _consent(client, tenant, account.subdomain)
    evil = await client.post(f"{BASE}/oauth/callback", headers=tenant.headers,
                             json={"code": query["code"], "state": query["state"], "referer": "acme.evil.example"})
    assert evil.status_code == 400
    assert evil.json()["errors"][0]["field"] == "body.referer"
    query = await _consent(client, tenant, account.subdomain)
    bad_code = await client.post(f"{BASE}/oauth/callback", headers=tenant.headers,
                                 json={"code": "nope", "state": query["state"], "referer": query["referer"]})
    assert bad_code.status_code == 400
    assert "Kommo rejected" in bad_code.json()["detail"]
    missing = await client.post(f"{BASE}/oauth/callback", headers=tenant.headers, json={"state": "x"})
    assert missing.status_code == 400
    assert (await get_connection_status(client, tenant)) == "pending"


async def get_connection_status(client: httpx.AsyncClient, tenant: Tenant) -> str:
    """The org's connection status as the API reports it."""
    return str((await client.get(f"{BASE}/status", headers=tenant.headers)).json()["status"])


async def test_oauth_endpoints_need_an_admin(client: httpx.AsyncClient, member: Tenant) -> None:
    for path, body in ((f"{BASE}/oauth/start", None),
                       (f"{BASE}/oauth/callback", {"code": "c", "state": "s", "referer": "a.kommo.com"}),
                       (f"{BASE}/credentials", {"subdomain": "acme", "access_token": "t"})):
        assert (await client.post(path, json=body)).status_code == 401
        assert (await client.post(path, json=body, headers=member.headers)).status_code == 403


async def test_long_lived_credentials_are_validated_against_the_account(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings, sessions: Sessions,
    temporal_client: Client,
) -> None:
    onboarding = await temporal_client.start_workflow(
        OnboardingWorkflow.run, OnboardingInput(org_id=tenant.org_id), id=onboarding_id(tenant.org_id),
        task_queue=TASK_QUEUE,
    )
    account = new_account(kommo_sandbox, settings)
    token = kommo_sandbox.long_lived_token(account)
    wrong = await client.post(f"{BASE}/credentials", headers=tenant.headers,
                              json={"subdomain": account.subdomain, "access_token": "not-a-token"})
    assert wrong.status_code == 400
    other = new_account(kommo_sandbox, settings)
    mismatch = await client.post(f"{BASE}/credentials", headers=tenant.headers,
                                 json={"subdomain": other.subdomain, "access_token": token})
    assert mismatch.status_code == 400
    bad = await client.post(f"{BASE}/credentials", headers=tenant.headers,
                            json={"subdomain": "not a domain!", "access_token": token})
    assert bad.status_code == 400
    ok = await client.post(f"{BASE}/credentials", headers=tenant.headers,
                           json={"subdomain": account.subdomain.upper(), "access_token": token})
    assert ok.status_code == 200, ok.text
    assert ok.json()["connection"]["long_lived"] is True
    row = await get_connection(sessions, tenant.org_id)
    assert row is not None
    assert row.refresh_token_enc is None
    assert row.expires_at is None
    # Connecting and the first sync both advance the org's onboarding.
    await temporal_client.get_workflow_handle(ok.json()["workflow_id"]).result()
    steps = {s.step: s.done for s in (await onboarding.query(OnboardingWorkflow.progress)).steps}
    assert steps[OnboardingStep.kommo_connected]
    assert steps[OnboardingStep.pipelines_synced]
    await onboarding.terminate("test done")


async def test_status_reports_not_connected_and_needs_auth(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await client.get(f"{BASE}/status")).status_code == 401
    r = await client.get(f"{BASE}/status", headers=tenant.headers)
    assert r.json() == {**r.json(), "status": "not_connected", "connected": False}


async def test_sync_pipelines_starts_the_org_sync_and_a_repeat_joins_it(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, kommo_sandbox: KommoSandbox,
    settings: Settings, sessions: Sessions, temporal_client: Client,
) -> None:
    assert (await client.post(f"{BASE}/sync/pipelines")).status_code == 401
    assert (await client.post(f"{BASE}/sync/pipelines", headers=tenant.headers)).status_code == 404
    await connect_directly(sessions, settings, kommo_sandbox, other_tenant.org_id)
    r = await client.post(f"{BASE}/sync/pipelines", headers={**other_tenant.headers, "Idempotency-Key": "k1"})
    assert r.status_code == 202, r.text
    assert r.json()["workflow_id"] == f"crm-sync/{other_tenant.org_id}"
    again = await client.post(f"{BASE}/sync/pipelines", headers={**other_tenant.headers, "Idempotency-Key": "k1"})
    assert again.json()["workflow_id"] == r.json()["workflow_id"]
    await temporal_client.get_workflow_handle(r.json()["workflow_id"]).result()
    # Another tenant's sync wrote nothing the caller can see.
    assert (await client.get("/api/crm/pipelines", headers=tenant.headers)).json()["items"] == []
    too_long = await client.post(f"{BASE}/sync/pipelines", headers={**other_tenant.headers,
                                                                     "Idempotency-Key": "k" * 300})
    assert too_long.status_code == 400


async def test_send_message_is_signed_and_idempotent(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings, sessions: Sessions
) -> None:
    body = {"conversation_id": "conv-1", "text": "Hello from salesflow", "receiver": {"id": "client-1"}}
    assert (await client.post(f"{BASE}/messages/send", json=body)).status_code == 401
    assert (await client.post(f"{BASE}/messages/send", json=body, headers=tenant.headers)).status_code == 404
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    headers = {**tenant.headers, "Idempotency-Key": f"send-{uuid.uuid4()}"}
    first = await client.post(f"{BASE}/messages/send", json=body, headers=headers)
    assert first.status_code == 200, first.text
    second = await client.post(f"{BASE}/messages/send", json=body, headers=headers)
    assert second.json()["ref_id"] == first.json()["ref_id"]
    mine = [m for m in kommo_sandbox.sent_messages if m.account_id == account.id]
    assert [m.duplicate for m in mine] == [False, True]  # the sandbox verified MD5, Date and X-Signature
    assert mine[0].text == "Hello from salesflow"
    assert mine[0].direction == "outgoing"
    bad = await client.post(f"{BASE}/messages/send", json={"text": ""}, headers=tenant.headers)
    assert bad.status_code == 400


async def test_crm_kommo_shows_the_webhook_url_and_manages_the_connection(
    client: httpx.AsyncClient, tenant: Tenant, member: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions,
) -> None:
    assert (await client.get("/api/crm/kommo")).status_code == 401
    none = (await client.get("/api/crm/kommo", headers=tenant.headers)).json()
    assert none["webhook_url"] is None
    assert none["connection"]["status"] == "not_connected"
    action = {"action": "rotate_webhook_secret"}
    assert (await client.post("/api/crm/kommo", json=action)).status_code == 401
    assert (await client.post("/api/crm/kommo", json=action, headers=tenant.headers)).status_code == 404

    _, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    assert (await client.get("/api/crm/kommo", headers=member.headers)).json()["webhook_url"] is None
    shown = (await client.get("/api/crm/kommo", headers=tenant.headers)).json()
    url = urlsplit(shown["webhook_url"])
    assert url.path == "/api/crm/webhook"
    assert parse_qs(url.query) == {"org": [str(tenant.org_id)], "secret": [connection.webhook_secret]}

    assert (await client.post("/api/crm/kommo", json=action, headers=member.headers)).status_code == 403
    assert (await client.post("/api/crm/kommo", json={"action": "explode"}, headers=tenant.headers)).status_code == 400
    rotated = (await client.post("/api/crm/kommo", json=action, headers=tenant.headers)).json()
    assert rotated["connection"]["webhook_url"] != shown["webhook_url"]

    updated = await client.post("/api/crm/kommo", headers=tenant.headers,
                                json={"action": "update", "settings": {"lead_tag": "salesflow"}})
    assert updated.json()["connection"]["connection"]["settings"]["lead_tag"] == "salesflow"
    reconnect = (await client.post("/api/crm/kommo", json={"action": "reconnect"}, headers=tenant.headers)).json()
    assert "state=" in reconnect["authorize_url"]
    gone = (await client.post("/api/crm/kommo", json={"action": "disconnect"}, headers=tenant.headers)).json()
    assert gone["connection"]["connection"]["status"] == "disconnected"
    assert gone["connection"]["webhook_url"] is None
    row = await get_connection(sessions, tenant.org_id)
    assert row is not None
    assert row.access_token_enc is None
    assert row.refresh_token_enc is None


async def test_crm_pipelines_needs_auth_and_a_valid_cursor(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await client.get("/api/crm/pipelines")).status_code == 401
    junk = await client.get("/api/crm/pipelines", params={"cursor": "junk!"}, headers=tenant.headers)
    assert junk.status_code == 400
    assert (await client.get("/api/crm/pipelines", headers=tenant.headers)).json() == {"items": [], "next_cursor": None}


async def test_kommo_settings_read_and_partial_update(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings, sessions: Sessions,
    temporal_client: Client,
) -> None:
    assert (await client.get("/api/kommo/settings")).status_code == 401
    assert (await client.post("/api/kommo/settings", json={})).status_code == 401
    assert (await client.get("/api/kommo/settings", headers=tenant.headers)).status_code == 404
    assert (await client.post("/api/kommo/settings", json={}, headers=tenant.headers)).status_code == 404
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    assert (await client.get("/api/kommo/settings", headers=tenant.headers)).json() == {
        "sync_leads": True, "default_responsible_user_id": None, "lead_tag": None}
    unknown_user = await client.post("/api/kommo/settings", json={"default_responsible_user_id": 5},
                                     headers=tenant.headers)
    assert unknown_user.status_code == 400
    assert (await client.post("/api/kommo/settings", json={"org_id": "x"}, headers=tenant.headers)).status_code == 400
    sync = await client.post(f"{BASE}/sync/pipelines", headers=tenant.headers)
    await temporal_client.get_workflow_handle(sync.json()["workflow_id"]).result()
    user_id = next(iter(account.users))
    r = await client.post("/api/kommo/settings", json={"default_responsible_user_id": user_id},
                          headers=tenant.headers)
    assert r.json()["default_responsible_user_id"] == user_id
    r = await client.post("/api/kommo/settings", json={"sync_leads": False}, headers=tenant.headers)
    assert r.json() == {"sync_leads": False, "default_responsible_user_id": user_id, "lead_tag": None}


async def test_test_kommo_is_404_outside_development_and_checks_the_account_in_development(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions, temporal_client: Client,
) -> None:
    assert (await client.get("/api/test-kommo")).status_code == 404
    assert (await client.get("/api/test-kommo", headers=tenant.headers)).status_code == 404

    dev = create_app(settings.model_copy(update={"environment": "development"}), sessions=sessions,
                     temporal=temporal_client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=dev), base_url="http://dev") as dev_client:
        assert (await dev_client.get("/api/test-kommo")).status_code == 401
        not_connected = (await dev_client.get("/api/test-kommo", headers=tenant.headers)).json()
        assert not_connected["ok"] is False
        account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
        ok = (await dev_client.get("/api/test-kommo", headers=tenant.headers)).json()
        assert ok["ok"] is True
        assert ok["account_id"] == account.id
        assert ok["subdomain"] == account.subdomain
