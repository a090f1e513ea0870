"""POST /api/crm/webhook: secret in the URL, form-encoded bodies, inbox dedupe, one workflow per event."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from db.models import Lead
from integrations.kommo.sandbox import KommoSandbox
from integrations.kommo.webhooks import encode_crm_webhook
from salesflow.settings import Settings
from tests.harness import Tenant
from tests.kommo_support import connect_directly, eventually, inbox_rows
from workflows.crm_event import CrmEventWorkflow

Sessions = async_sessionmaker[AsyncSession]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def _post(client: httpx.AsyncClient, org: Any, secret: Any, body: str | bytes) -> httpx.Response:
    params = {k: str(v) for k, v in (("org", org), ("secret", secret)) if v is not None}
    return await client.post("/api/crm/webhook", params=params, content=body, headers=FORM)


async def test_a_status_change_is_stored_refetched_and_recorded(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions, temporal_client: Client,
) -> None:
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    lead = kommo_sandbox.add_lead(account, "Big deal", price=5000)
    contact = kommo_sandbox.add_contact(account, "Ann Lee", phone="+15550100", email="ann@example.com",
                                        lead_id=lead.id)
    won = 142
    # The webhook is stale on purpose: the workflow must act on what the API says now.
    account.leads[lead.id]["name"] = "Big deal (renamed)"
    body = encode_crm_webhook(account.id, account.subdomain, [
        {"entity": "lead", "action": "status", "id": lead.id, "status_id": won, "pipeline_id": lead.pipeline_id,
         "old_status_id": lead.status_id, "last_modified": 1_700_000_000}])
    started = time.perf_counter()
    r = await _post(client, tenant.org_id, connection.webhook_secret, body)
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "duplicates": 0}
    assert elapsed < 2.0

    [row] = await inbox_rows(sessions, tenant.org_id)
    assert row.source == "kommo_crm"
    assert row.event_type == "lead.status"
    result = await temporal_client.get_workflow_handle_for(CrmEventWorkflow.run, row.workflow_id or "").result()
    assert result.outcome.endswith("no trigger matched")
    [row] = await inbox_rows(sessions, tenant.org_id)
    assert row.processed_at is not None
    assert row.outcome is not None
    assert row.outcome.endswith("no trigger matched")
    key = f"{account.id}:lead:status:{lead.id}:p{lead.pipeline_id}:s142:t1700000000"
    assert row.workflow_id == f"crm-event/{tenant.org_id}/{key}"
    async with sessions() as session:
        mirrored = await session.scalar(select(Lead).where(Lead.org_id == tenant.org_id, Lead.kommo_id == lead.id))
    assert mirrored is not None
    assert mirrored.id == result.lead_id
    assert (mirrored.name, mirrored.price, mirrored.phone, mirrored.email) == (
        "Big deal (renamed)", 5000, "+15550100", "ann@example.com")
    assert contact.id in [c.id for c in kommo_sandbox.lead(account, lead.id).embedded.contacts]


async def test_a_redelivered_webhook_is_dropped(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions, temporal_client: Client,
) -> None:
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    lead = kommo_sandbox.add_lead(account)
    event = {"entity": "lead", "action": "update", "id": lead.id, "last_modified": 1_700_000_100}
    body = encode_crm_webhook(account.id, account.subdomain, [event, event])
    first = await _post(client, tenant.org_id, connection.webhook_secret, body)
    assert first.json() == {"accepted": 1, "duplicates": 1}
    [row] = await inbox_rows(sessions, tenant.org_id)
    await temporal_client.get_workflow_handle(row.workflow_id or "").result()
    again = await _post(client, tenant.org_id, connection.webhook_secret, body)
    assert again.json() == {"accepted": 0, "duplicates": 2}
    assert len(await inbox_rows(sessions, tenant.org_id)) == 1
    # A later change of the same lead is a new event.
    later = encode_crm_webhook(account.id, account.subdomain, [{**event, "last_modified": 1_700_000_200}])
    assert (await _post(client, tenant.org_id, connection.webhook_secret, later)).json()["accepted"] == 1


async def test_a_forged_or_missing_secret_is_an_indistinguishable_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, kommo_sandbox: KommoSandbox,
    settings: Settings, sessions: Sessions,
) -> None:
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    _, other = await connect_directly(sessions, settings, kommo_sandbox, other_tenant.org_id)
    body = encode_crm_webhook(account.id, account.subdomain, [{"entity": "lead", "action": "add", "id": 1}])
    answers = [
        await _post(client, tenant.org_id, "forged-" + connection.webhook_secret[7:], body),
        await _post(client, tenant.org_id, None, body),
        await _post(client, tenant.org_id, "", body),
        await _post(client, None, connection.webhook_secret, body),
        await _post(client, "not-a-uuid", connection.webhook_secret, body),
        await _post(client, uuid.uuid4(), connection.webhook_secret, body),
        # Another tenant's secret does not open this org, nor this org's secret another org.
        await _post(client, tenant.org_id, other.webhook_secret, body),
        await _post(client, other_tenant.org_id, connection.webhook_secret, body),
    ]
    assert {r.status_code for r in answers} == {404}
    assert len({r.content for r in answers}) == 1
    assert await inbox_rows(sessions, tenant.org_id) == []
    assert await inbox_rows(sessions, other_tenant.org_id) == []


async def test_malformed_bodies_are_400_and_store_nothing(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings, sessions: Sessions
) -> None:
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    bodies: list[str | bytes] = [
        "",
        "leads[status][0][id]=1",  # no account
        f"account[id]={account.id}&account[subdomain]={account.subdomain}",  # no event
        f"account[id]={account.id}&account[subdomain]=x&leads[status][0][id]=abc",
        f"account[id]={account.id}&account[subdomain]=x&leads[status][][id]=1",
        f"account[id]={account.id}&account[subdomain]=x&leads[status]=1",
        f"account[id]={account.id}&account[subdomain]=x&leads[add][0][id]=1%00",
        b"account[id]=1&account[subdomain]=\xff\xfe&leads[add][0][id]=1",
        '{"leads": {"add": [{"id": 1}]}}',
        # A valid body from another Kommo account than the connected one.
        encode_crm_webhook(account.id + 1, account.subdomain, [{"entity": "lead", "action": "add", "id": 1}]),
    ]
    for body in bodies:
        r = await _post(client, tenant.org_id, connection.webhook_secret, body)
        assert r.status_code == 400, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    huge = await _post(client, tenant.org_id, connection.webhook_secret, "a=" + "x" * (1024 * 1024 + 1))
    assert huge.status_code == 413
    assert await inbox_rows(sessions, tenant.org_id) == []


async def test_an_incoming_message_event_is_recorded(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions, temporal_client: Client,
) -> None:
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    lead = kommo_sandbox.add_lead(account, "Chatty")
    body = encode_crm_webhook(account.id, account.subdomain, [
        {"entity": "message", "action": "add", "id": str(uuid.uuid4()), "chat_id": "chat-1", "talk_id": 7,
         "text": "Is it still available?", "element_type": 2, "element_id": lead.id, "created_at": 1_700_000_000,
         "author": {"type": "external", "id": "client-1"}}])
    assert (await _post(client, tenant.org_id, connection.webhook_secret, body)).json()["accepted"] == 1
    [row] = await inbox_rows(sessions, tenant.org_id)
    result = await temporal_client.get_workflow_handle_for(CrmEventWorkflow.run, row.workflow_id or "").result()
    assert result.outcome.endswith("no trigger matched")
    [row] = await inbox_rows(sessions, tenant.org_id)
    assert row.event_type == "message.add"
    assert row.payload["text"] == "Is it still available?"
    assert row.outcome == result.outcome


async def test_a_burst_of_500_events_starts_500_workflows(
    client: httpx.AsyncClient, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions, temporal_client: Client,
) -> None:
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    # Deleted leads need no re-fetch, so the burst measures intake and workflows, not Kommo's 7 req/s.
    bodies = [encode_crm_webhook(account.id, account.subdomain, [{"entity": "lead", "action": "delete", "id": i}])
              for i in range(1, 501)]
    gate = asyncio.Semaphore(50)

    async def send(body: str) -> int:
        async with gate:
            return (await _post(client, tenant.org_id, connection.webhook_secret, body)).status_code

    statuses = await asyncio.gather(*(send(b) for b in bodies))
    assert statuses == [200] * 500
    rows = await inbox_rows(sessions, tenant.org_id)
    assert len(rows) == 500
    assert len({r.workflow_id for r in rows}) == 500

    async def all_processed() -> bool:
        return all(r.processed_at is not None for r in await inbox_rows(sessions, tenant.org_id))

    await eventually(all_processed, within=60, interval=0.25)
    rows = await inbox_rows(sessions, tenant.org_id)
    # The org has no triggers, so every event ends with no trigger fired (matched, applicable or evaluated).
    assert all(r.outcome is not None and "no trigger" in r.outcome for r in rows)
    sample = await temporal_client.get_workflow_handle(rows[0].workflow_id or "").describe()
    assert sample.workflow_type == "CrmEventWorkflow"
