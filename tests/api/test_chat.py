"""/api/chat, /api/chat/conversations (+ draft decisions and hand-back) and the Kommo chat hook endpoint."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db.models import MessageStatus
from integrations.kommo.sandbox import KommoSandbox
from salesflow.settings import Settings
from tests.chat_support import (
    ChatFactory,
    ChatSetup,
    chat_factory,
    conversation_of,
    lead_hook,
    manager_hook,
    messages_of,
    replies_to,
    seed_agent,
    seed_chat,
    signed,
    skip_until,
)
from tests.harness import Tenant
from workflows.ids import conversation_id

Sessions = async_sessionmaker[AsyncSession]
SECOND = timedelta(seconds=1)
MISSING = uuid.uuid4()


async def new_agent(sessions: Sessions, org_id: uuid.UUID) -> uuid.UUID:
    async with sessions() as session:
        agent = await seed_agent(session, org_id)
        await session.commit()
        return agent.id


async def playground(client: httpx.AsyncClient, tenant: Tenant, agent_id: uuid.UUID, text: str,
                     conversation: str | None = None) -> httpx.Response:
    body: dict[str, object] = {"agent_id": str(agent_id), "message": text}
    if conversation:
        body["conversation_id"] = conversation
    return await client.post("/api/chat", json=body, headers=tenant.headers)


@pytest.fixture
async def make_chat(
    sessions: Sessions, settings: Settings, kommo_sandbox: KommoSandbox, tenant: Tenant, temporal_client: Client,
) -> AsyncIterator[ChatFactory]:
    """Seeds a chat with the given agent channel settings; its workflow is terminated afterwards."""
    async with chat_factory(sessions, settings, kommo_sandbox, tenant.org_id, temporal_client) as make:
        yield make


@pytest.fixture
async def chat(make_chat: ChatFactory) -> ChatSetup:
    """A seeded org/agent/lead with the default channel settings."""
    return await make_chat()


async def post_hook(client: httpx.AsyncClient, settings: Settings, scope_id: str, payload: dict[str, object],
                    secret: str | None = None) -> httpx.Response:
    body, headers = signed(payload, secret or settings.kommo_chat_channel_secret or "")
    return await client.post(f"/api/integrations/kommo/chat/hook/{scope_id}", content=body, headers=headers)


# ---- POST /api/chat (playground) ------------------------------------------------------------------------


async def test_playground_replies_from_the_agents_knowledge_and_keeps_context(
    client: httpx.AsyncClient, tenant: Tenant, sessions: Sessions,
) -> None:
    agent_id = await new_agent(sessions, tenant.org_id)
    first = await playground(client, tenant, agent_id, "Hi! I'm Maria Lopez. What warranty do the panels have?")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["reply"]["text"].startswith("Hi! I'm Sunny from BrightSun Solar.")
    assert "25-year performance warranty" in body["reply"]["text"]
    assert body["extracted"] == {"name": "Maria Lopez"}
    assert body["provider"] == "playbook"
    second = await playground(client, tenant, agent_id, "maria@example.com, budget 20000",
                              conversation=body["conversation_id"])
    assert second.json()["fields"] == {"name": "Maria Lopez", "email": "maria@example.com", "budget": 20000}
    assert second.json()["stage"] == "closing"


async def test_playground_needs_auth_valid_input_and_an_own_agent(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, sessions: Sessions,
) -> None:
    agent_id = await new_agent(sessions, tenant.org_id)
    other_agent = await new_agent(sessions, other_tenant.org_id)
    assert (await client.post("/api/chat", json={"agent_id": str(agent_id), "message": "hi"})).status_code == 401
    assert (await playground(client, tenant, agent_id, "")).status_code == 400
    extra = await client.post("/api/chat", json={"agent_id": str(agent_id), "message": "hi", "org_id": "x"},
                              headers=tenant.headers)
    assert extra.status_code == 400
    assert (await playground(client, tenant, MISSING, "hi")).status_code == 404
    assert (await playground(client, tenant, other_agent, "hi")).status_code == 404
    mine = (await playground(client, tenant, agent_id, "hi")).json()["conversation_id"]
    assert (await playground(client, other_tenant, other_agent, "hi", conversation=mine)).status_code == 404


# ---- GET /api/chat (history) ----------------------------------------------------------------------------


async def test_history_lists_a_conversations_messages_newest_first_with_pages(
    client: httpx.AsyncClient, tenant: Tenant, sessions: Sessions,
) -> None:
    agent_id = await new_agent(sessions, tenant.org_id)
    conversation = (await playground(client, tenant, agent_id, "How long does installation take?")).json()
    page = await client.get("/api/chat", params={"conversation_id": conversation["conversation_id"], "limit": 1},
                            headers=tenant.headers)
    assert page.status_code == 200
    assert [m["author"] for m in page.json()["items"]] == ["agent"]
    rest = await client.get("/api/chat", params={"conversation_id": conversation["conversation_id"],
                                                 "cursor": page.json()["next_cursor"]}, headers=tenant.headers)
    assert [m["text"] for m in rest.json()["items"]] == ["How long does installation take?"]


async def test_history_needs_auth_exactly_one_selector_and_an_own_conversation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, sessions: Sessions,
) -> None:
    agent_id = await new_agent(sessions, tenant.org_id)
    mine = (await playground(client, tenant, agent_id, "hi")).json()["conversation_id"]
    assert (await client.get("/api/chat", params={"conversation_id": mine})).status_code == 401
    assert (await client.get("/api/chat", headers=tenant.headers)).status_code == 400
    bad_id = await client.get("/api/chat", params={"conversation_id": "nope"}, headers=tenant.headers)
    assert bad_id.status_code == 400
    assert (await client.get("/api/chat", params={"conversation_id": mine, "cursor": "zzz"},
                             headers=tenant.headers)).status_code == 400
    assert (await client.get("/api/chat", params={"conversation_id": str(MISSING)},
                             headers=tenant.headers)).status_code == 404
    assert (await client.get("/api/chat", params={"lead_id": str(MISSING)}, headers=tenant.headers)).status_code == 404
    assert (await client.get("/api/chat", params={"conversation_id": mine},
                             headers=other_tenant.headers)).status_code == 404


# ---- GET /api/chat/conversations -------------------------------------------------------------------------


async def test_conversations_are_listed_with_filters(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup, tenant: Tenant,
    workflow_env: WorkflowEnvironment, sessions: Sessions,
) -> None:
    await post_hook(client, settings, chat.scope_id, lead_hook(kommo_sandbox, chat, "Hello"))
    await post_hook(client, settings, chat.scope_id, manager_hook(kommo_sandbox, chat, "Paulo here"))

    async def handed_off() -> bool:
        row = await conversation_of(sessions, chat)
        return row is not None and row.status.value == "handoff"

    await skip_until(workflow_env, handed_off, step=SECOND)
    listed = await client.get("/api/chat/conversations", params={"agent_id": str(chat.agent_id), "handoff": "true"},
                              headers=tenant.headers)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["lead_id"] == str(chat.lead_id)
    assert item["workflow_id"] == conversation_id(chat.org_id, chat.lead_id)
    assert item["temporal_url"].endswith("/workflows/" + item["workflow_id"].replace("/", "%2F"))
    none = await client.get("/api/chat/conversations", params={"handoff": "false", "agent_id": str(chat.agent_id)},
                            headers=tenant.headers)
    assert none.json()["items"] == []
    recent = await client.get("/api/chat/conversations", params={"since": "2000-01-01T00:00:00Z",
                                                                 "status": "handoff"}, headers=tenant.headers)
    assert [c["id"] for c in recent.json()["items"]] == [item["id"]]


async def test_conversations_list_needs_auth_valid_filters_and_own_agents(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, sessions: Sessions,
) -> None:
    other_agent = await new_agent(sessions, other_tenant.org_id)
    assert (await client.get("/api/chat/conversations")).status_code == 401
    for params in ({"status": "sleeping"}, {"since": "yesterday"}, {"limit": "0"}, {"agent_id": "x"}):
        assert (await client.get("/api/chat/conversations", params=params, headers=tenant.headers)).status_code == 400
    assert (await client.get("/api/chat/conversations", params={"agent_id": str(MISSING)},
                             headers=tenant.headers)).status_code == 404
    assert (await client.get("/api/chat/conversations", params={"agent_id": str(other_agent)},
                             headers=tenant.headers)).status_code == 404


# ---- POST /api/chat/conversations/{id}/draft-decision ----------------------------------------------------


async def test_an_edited_draft_is_sent_as_edited(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, make_chat: ChatFactory,
    tenant: Tenant, other_tenant: Tenant, workflow_env: WorkflowEnvironment, sessions: Sessions,
) -> None:
    chat = await make_chat(approval_mode=True, approval_timeout_minutes=60)
    await post_hook(client, settings, chat.scope_id, lead_hook(kommo_sandbox, chat, "What warranty do you give?"))

    async def drafted() -> bool:
        return any(m.status == MessageStatus.pending_approval for m in await messages_of(sessions, chat.org_id))

    await skip_until(workflow_env, drafted, step=SECOND)
    draft = next(m for m in await messages_of(sessions, chat.org_id) if m.status == MessageStatus.pending_approval)
    row = await conversation_of(sessions, chat)
    assert row is not None
    url = f"/api/chat/conversations/{row.id}/draft-decision"
    edit = {"message_id": str(draft.id), "decision": "edit", "text": "25 years on panels, 10 on the work. — Ana"}
    assert (await client.post(url, json=edit)).status_code == 401
    assert (await client.post(url, json={**edit, "text": None}, headers=tenant.headers)).status_code == 400
    missing = f"/api/chat/conversations/{MISSING}/draft-decision"
    assert (await client.post(missing, json=edit, headers=tenant.headers)).status_code == 404
    assert (await client.post(url, json=edit, headers=other_tenant.headers)).status_code == 404
    assert (await client.post(url, json={**edit, "message_id": str(MISSING)},
                              headers=tenant.headers)).status_code == 404
    decided = await client.post(url, json=edit, headers=tenant.headers)
    assert decided.status_code == 200, decided.text
    assert decided.json() == {"message_id": str(draft.id), "status": "accepted", "decision": "edit",
                              "text": edit["text"]}

    async def sent() -> bool:
        return replies_to(kommo_sandbox, chat) == [edit["text"]]

    await skip_until(workflow_env, sent, step=SECOND)
    again = await client.post(url, json={**edit, "decision": "approve"}, headers=tenant.headers)
    assert again.status_code == 409


# ---- POST /api/chat/conversations/{id}/hand-back ---------------------------------------------------------


async def test_a_manager_hands_the_lead_back_before_the_window_ends(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup, tenant: Tenant,
    other_tenant: Tenant, workflow_env: WorkflowEnvironment, sessions: Sessions,
) -> None:
    await post_hook(client, settings, chat.scope_id, manager_hook(kommo_sandbox, chat, "Paulo here, hi Maria"))

    async def status_is(value: str) -> bool:
        row = await conversation_of(sessions, chat)
        return row is not None and row.status.value == value

    await skip_until(workflow_env, lambda: status_is("handoff"), step=SECOND)
    row = await conversation_of(sessions, chat)
    assert row is not None
    url = f"/api/chat/conversations/{row.id}/hand-back"
    assert (await client.post(url)).status_code == 401
    assert (await client.post("/api/chat/conversations/nope/hand-back", headers=tenant.headers)).status_code == 400
    assert (await client.post(url, json={"note": "x" * 501}, headers=tenant.headers)).status_code == 400
    assert (await client.post(f"/api/chat/conversations/{MISSING}/hand-back",
                              headers=tenant.headers)).status_code == 404
    assert (await client.post(url, headers=other_tenant.headers)).status_code == 404
    back = await client.post(url, json={"note": "all yours"}, headers=tenant.headers)
    assert back.status_code == 202
    assert back.json()["workflow_id"] == conversation_id(chat.org_id, chat.lead_id)
    await skip_until(workflow_env, lambda: status_is("active"), step=SECOND)
    await post_hook(client, settings, chat.scope_id, lead_hook(kommo_sandbox, chat, "How long does installation take?"))

    async def answered() -> bool:
        return len(replies_to(kommo_sandbox, chat)) == 1

    await skip_until(workflow_env, answered, step=SECOND)
    assert (await client.post(url, headers=tenant.headers)).status_code == 409  # no longer handed off


# ---- POST /api/integrations/kommo/chat/hook/{scope_id} ---------------------------------------------------


async def test_chat_hook_rejects_bad_signatures_bad_bodies_and_unknown_channels(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup, tenant: Tenant,
    other_tenant: Tenant, sessions: Sessions,
) -> None:
    payload = lead_hook(kommo_sandbox, chat, "hello")
    assert (await post_hook(client, settings, chat.scope_id, payload, secret="forged")).status_code == 401
    body, _ = signed(payload, settings.kommo_chat_channel_secret or "")
    unsigned = await client.post(f"/api/integrations/kommo/chat/hook/{chat.scope_id}", content=body,
                                 headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert (await post_hook(client, settings, chat.scope_id, {"message": "nope"})).status_code == 400
    nul = lead_hook(kommo_sandbox, chat, "bad\u0000text")
    assert (await post_hook(client, settings, chat.scope_id, nul)).status_code == 400
    not_json, not_json_headers = b"{not json", signed({}, settings.kommo_chat_channel_secret or "")[1]
    from integrations.kommo.signing import sign_body

    not_json_headers["X-Signature"] = sign_body(settings.kommo_chat_channel_secret or "", not_json)
    bad = await client.post(f"/api/integrations/kommo/chat/hook/{chat.scope_id}", content=not_json,
                            headers=not_json_headers)
    assert bad.status_code == 400
    assert (await post_hook(client, settings, "unknown-scope", payload)).status_code == 404
    # Another organisation's channel: its scope with our signature is still not ours to post into.
    other = await seed_chat(sessions, settings, kommo_sandbox, other_tenant.org_id)
    async with sessions() as session:
        from sqlalchemy import update

        from db.models import KommoConnection
        from integrations.crypto import SecretBox

        await session.execute(update(KommoConnection).where(KommoConnection.org_id == other_tenant.org_id)
                              .values(chat_channel_secret_enc=SecretBox(settings.token_encryption_key).encrypt("theirs")))
        await session.commit()
    assert (await post_hook(client, settings, other.scope_id, payload)).status_code == 401
    assert await messages_of(sessions, chat.org_id) == []


async def test_a_hook_for_a_chat_with_no_lead_is_stored_and_ignored(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup, sessions: Sessions,
) -> None:
    payload = kommo_sandbox.chat_hook_payload(chat.account, "unknown-chat", "hello")
    response = await post_hook(client, settings, chat.scope_id, payload)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
