"""End to end over real HTTP: a lead moved in Kommo starts a sequence through a trigger, its messages reach Kommo's
chat at the right simulated times, and the lead's answer (a CRM ``message[add]`` webhook) stops it and gets the
agent's reply.

The app is served on a loopback port and the Kommo sandbox POSTs its webhooks there; the worker (every workflow
and activity of ours) runs on this module's own time-skipping server, so days pass in seconds without moving the
session server's clock.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from db.models import (
    Conversation,
    ConversationStatus,
    Enrollment,
    EnrollmentStatus,
    EnrollmentStepLog,
    Lead,
    MessageAuthor,
)
from integrations.kommo.sandbox import KommoSandbox, SandboxAccount
from salesflow.settings import Settings
from tests.chat_support import messages_of, seed_agent, skip_until
from tests.e2e.serving import served
from tests.harness import Tenant
from tests.kommo_support import connect_directly

Sessions = async_sessionmaker[AsyncSession]

STEPS = [
    {"type": "send_message", "id": "hello", "text": "Hi {{ first_name }}, thanks for looking at solar!", "next": "gap"},
    {"type": "wait", "id": "gap", "duration": "P2D", "next": "nudge"},
    {"type": "send_message", "id": "nudge", "text": "Did you get a chance to look at our offer?", "next": "later"},
    {"type": "wait", "id": "later", "duration": "P3D", "next": "last"},
    {"type": "send_message", "id": "last", "text": "Last note from us.", "next": None},
]


@pytest.fixture(scope="module")
async def api_url(settings: Settings, sessions: Sessions, own_temporal: WorkflowEnvironment) -> AsyncIterator[str]:
    """The real app, talking to this module's Temporal server, on a real port."""
    async with served(create_app(settings, sessions=sessions, temporal=own_temporal.client)) as url:
        yield url


async def _post(api: httpx.AsyncClient, tenant: Tenant, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _chat(sandbox: KommoSandbox, account: SandboxAccount, kommo_lead_id: int) -> list[str]:
    """Texts delivered into the lead's chat of our channel (amojo-deduplicated)."""
    return [m.text or "" for m in sandbox.delivered_messages
            if m.scope_id == account.scope_id and m.conversation_id == f"lead-{kommo_lead_id}"]


async def test_a_status_webhook_starts_a_sequence_on_time_and_the_leads_answer_stops_it(
    api_url: str, own_temporal: WorkflowEnvironment, kommo_sandbox: KommoSandbox, sessions: Sessions,
    settings: Settings, tenant: Tenant,
) -> None:
    env = own_temporal
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    async with sessions() as session:
        agent = await seed_agent(session, tenant.org_id, channel_settings={"debounce_seconds": 5})
        await session.commit()
    negotiation = account.status_id("Negotiation")
    remote = kommo_sandbox.add_lead(account, "Maria - solar roof")
    async with httpx.AsyncClient(base_url=api_url) as api:
        sequence = await _post(api, tenant, f"/api/agents/{agent.id}/sequences",
                               {"name": "Negotiation follow-up", "steps": STEPS, "send_window": {"any_time": True}})
        await _post(api, tenant, f"/api/agents/{agent.id}/triggers", {
            "name": "Follow up negotiations", "per_lead_limit": 1,
            "event": {"type": "status_changed", "status_id": negotiation, "pipeline_id": account.main_pipeline_id},
            "actions": [{"type": "enroll_in_sequence", "sequence_id": sequence["id"]}],
        })
    webhook = f"{api_url}/api/crm/webhook?org={tenant.org_id}&secret={connection.webhook_secret}"

    # A manager moves the lead to Negotiation in Kommo; Kommo posts the status webhook.
    moved = kommo_sandbox.move_lead(account, remote.id, negotiation)
    response = await kommo_sandbox.send_crm_webhook(webhook, account, [moved])
    assert response.status_code == 200, response.text

    async def first_message_sent() -> bool:
        return len(_chat(kommo_sandbox, account, remote.id)) == 1

    await skip_until(env, first_message_sent, step=timedelta(seconds=5))
    # The lead exists in our mirror only because the event re-fetched it from Kommo.
    async with sessions() as session:
        lead = await session.scalar(select(Lead).where(Lead.org_id == tenant.org_id, Lead.kommo_id == remote.id))
        assert lead is not None
        assert lead.status_kommo_id == negotiation
        enrollment = await session.scalar(select(Enrollment).where(Enrollment.lead_id == lead.id))
        assert enrollment is not None
        assert str(enrollment.sequence_id) == sequence["id"]
    assert _chat(kommo_sandbox, account, remote.id) == ["Hi Maria, thanks for looking at solar!"]

    async def nudge_sent() -> bool:
        return len(_chat(kommo_sandbox, account, remote.id)) == 2

    await skip_until(env, nudge_sent, step=timedelta(hours=6), tries=12)
    sends = await _sent_at(sessions, enrollment.id)
    gap = sends["nudge"] - sends["hello"]
    assert timedelta(days=2) <= gap < timedelta(days=2, hours=6), gap

    # The lead answers in the chat; Kommo reports it with a message[add] webhook.
    answer = kommo_sandbox.chat_message_event(account, remote.id, "Do you offer financing?", author_name="Maria")
    response = await kommo_sandbox.send_crm_webhook(webhook, account, [answer])
    assert response.status_code == 200, response.text
    # A redelivery of the same webhook changes nothing.
    assert (await kommo_sandbox.send_crm_webhook(webhook, account, [answer])).status_code == 200

    async def stopped_and_answered() -> bool:
        async with sessions() as session:
            row = await session.get(Enrollment, enrollment.id, populate_existing=True)
        return row is not None and row.status == EnrollmentStatus.exited and \
            len(_chat(kommo_sandbox, account, remote.id)) == 3

    await skip_until(env, stopped_and_answered, step=timedelta(seconds=5))
    async with sessions() as session:
        row = await session.get(Enrollment, enrollment.id)
    assert row is not None
    assert row.exit_reason == "replied"
    reply = _chat(kommo_sandbox, account, remote.id)[2]
    assert "financing over 5, 10 or 15 years" in reply

    # Days later the last step's time has long passed: nothing more was sent.
    await env.sleep(timedelta(days=5))
    assert len(_chat(kommo_sandbox, account, remote.id)) == 3
    assert "last" not in await _sent_at(sessions, enrollment.id)
    recorded = [(m.author, m.text) for m in await messages_of(sessions, tenant.org_id)
                if m.author in (MessageAuthor.lead, MessageAuthor.agent)]
    assert recorded == [(MessageAuthor.lead, "Do you offer financing?"), (MessageAuthor.agent, reply)]


async def _sent_at(sessions: Sessions, enrollment_id: uuid.UUID) -> dict[str, Any]:
    async with sessions() as session:
        rows = await session.scalars(select(EnrollmentStepLog).where(EnrollmentStepLog.enrollment_id == enrollment_id,
                                                                     EnrollmentStepLog.sent_at.is_not(None)))
        return {row.step_id: row.sent_at for row in rows}



async def test_a_managers_crm_chat_message_hands_the_lead_over_and_a_bots_is_ignored(
    api_url: str, own_temporal: WorkflowEnvironment, kommo_sandbox: KommoSandbox, sessions: Sessions,
    settings: Settings, tenant: Tenant,
) -> None:
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    async with sessions() as session:
        await seed_agent(session, tenant.org_id, channel_settings={"debounce_seconds": 5, "handoff_minutes": 30})
        await session.commit()
    remote = kommo_sandbox.add_lead(account, "Maria - solar roof")
    webhook = f"{api_url}/api/crm/webhook?org={tenant.org_id}&secret={connection.webhook_secret}"
    bot = kommo_sandbox.chat_message_event(account, remote.id, "Salesbot: we got your request", incoming=False)
    bot["author"]["type"] = "bot"
    manager = kommo_sandbox.chat_message_event(account, remote.id, "Hi Maria, Joao here, I'll take it from here",
                                               incoming=False, author_name="Joao")
    for event in (bot, manager):
        assert (await kommo_sandbox.send_crm_webhook(webhook, account, [event])).status_code == 200

    async def handed_over() -> bool:
        async with sessions() as session:
            conversation = await session.scalar(select(Conversation).where(Conversation.org_id == tenant.org_id))
        return conversation is not None and conversation.status == ConversationStatus.handoff

    await skip_until(own_temporal, handed_over, step=timedelta(seconds=5))
    lead_says = kommo_sandbox.chat_message_event(account, remote.id, "Great, thanks Joao!", author_name="Maria")
    assert (await kommo_sandbox.send_crm_webhook(webhook, account, [lead_says])).status_code == 200
    await skip_until(own_temporal, lambda: _recorded(sessions, tenant.org_id, 2), step=timedelta(seconds=5))
    await own_temporal.sleep(timedelta(minutes=10))

    assert [(m.author, m.text) for m in await messages_of(sessions, tenant.org_id)
            if m.author != MessageAuthor.system] == [
        (MessageAuthor.manager, "Hi Maria, Joao here, I'll take it from here"),
        (MessageAuthor.lead, "Great, thanks Joao!"),
    ]
    assert _chat(kommo_sandbox, account, remote.id) == []


async def _recorded(sessions: Sessions, org_id: uuid.UUID, count: int) -> bool:
    return len([m for m in await messages_of(sessions, org_id) if m.author != MessageAuthor.system]) >= count
