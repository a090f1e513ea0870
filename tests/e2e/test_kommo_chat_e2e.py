"""End to end over real HTTP: Kommo's sandbox signs and POSTs a chat hook to our served API, the worker answers
through the sandbox's amojo (which checks our request signature), and a forged hook leaves no trace."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db.models import Conversation, InboxEvent, Message
from integrations.kommo.sandbox import KommoSandbox
from salesflow.settings import Settings
from tests.chat_support import ChatSetup, lead_hook, replies_to, seed_chat, skip_until
from tests.e2e.serving import served
from tests.harness import RouteRecorder, Tenant
from workflows.ids import conversation_id

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def served_api(app_client: httpx.AsyncClient, route_recorder: RouteRecorder) -> AsyncIterator[str]:
    """Our app (the same instance the other tests use) on a real loopback port."""
    async with served(route_recorder) as url:
        yield url


@pytest.fixture
async def chat(sessions: Sessions, settings: Settings, kommo_sandbox: KommoSandbox, tenant: Tenant,
               temporal_client: Client) -> AsyncIterator[ChatSetup]:
    setup = await seed_chat(sessions, settings, kommo_sandbox, tenant.org_id)
    yield setup
    with contextlib.suppress(Exception):
        await temporal_client.get_workflow_handle(conversation_id(setup.org_id, setup.lead_id)).terminate()


async def test_a_signed_chat_hook_gets_a_reply_delivered_with_a_valid_signature(
    served_api: str, kommo_sandbox: KommoSandbox, chat: ChatSetup, workflow_env: WorkflowEnvironment,
) -> None:
    url = f"{served_api}/api/integrations/kommo/chat/hook/{chat.scope_id}"
    hook = lead_hook(kommo_sandbox, chat, "Do you have financing?")
    response = await kommo_sandbox.send_chat_hook(url, chat.account, hook)
    assert response.status_code == 200, response.text

    async def delivered() -> bool:
        return len(replies_to(kommo_sandbox, chat)) == 1

    await skip_until(workflow_env, delivered, step=timedelta(seconds=1))
    reply = replies_to(kommo_sandbox, chat)[0]
    assert "financing over 5, 10 or 15 years" in reply
    # The sandbox answers 403 to a bad X-Signature, so a recorded message was signed correctly.
    sent = [m for m in kommo_sandbox.sent_messages if m.conversation_id == chat.chat_id]
    assert sent[0].receiver == {"id": "client-maria", "name": "Maria"}
    assert [r.status for r in kommo_sandbox.requests if r.path == f"/v2/origin/custom/{chat.scope_id}"] == [200]


async def test_a_forged_chat_hook_is_rejected_and_nothing_is_stored(
    served_api: str, kommo_sandbox: KommoSandbox, chat: ChatSetup, sessions: Sessions,
) -> None:
    url = f"{served_api}/api/integrations/kommo/chat/hook/{chat.scope_id}"
    payload = lead_hook(kommo_sandbox, chat, "Do you have financing?")
    original = chat.account.channel_secret
    chat.account.channel_secret = "not-the-channel-secret"  # the sandbox signs with a key we do not hold
    try:
        forged = await kommo_sandbox.send_chat_hook(url, chat.account, payload)
    finally:
        chat.account.channel_secret = original
    async with httpx.AsyncClient() as http:
        unsigned = await http.post(url, json=payload)
    assert forged.status_code == 401
    assert unsigned.status_code == 401
    assert forged.headers["content-type"] == "application/problem+json"
    async with sessions() as session:
        for model in (InboxEvent, Conversation, Message):
            count = await session.scalar(select(func.count()).select_from(model).where(model.org_id == chat.org_id))
            assert count == 0, model.__name__
