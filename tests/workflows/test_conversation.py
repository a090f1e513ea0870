"""LeadConversationWorkflow on the time-skipping test server, with real Postgres and the Kommo sandbox over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from db.models import EnrollmentStatus, InboxEvent, Lead, MessageAuthor, MessageStatus, Notification
from integrations.kommo.sandbox import KommoSandbox
from salesflow.conversations import deliver_incoming_message
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
    signed,
    skip_until,
)
from tests.e2e.serving import Receiver, webhook_receiver
from tests.harness import Tenant
from tests.sequence_support import enroll, enrollment_row, make_sequence
from workflows.conversation import LeadConversationWorkflow
from workflows.conversation_models import ConversationInput, IncomingMessage
from workflows.ids import TASK_QUEUE, conversation_id

Sessions = async_sessionmaker[AsyncSession]
SECOND = timedelta(seconds=1)
HISTORIES = Path(__file__).parent / "histories"


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


async def post_hook(client: httpx.AsyncClient, settings: Settings, setup: ChatSetup, payload: dict[str, object],
                    secret: str | None = None) -> httpx.Response:
    body, headers = signed(payload, secret or settings.kommo_chat_channel_secret or "")
    return await client.post(f"/api/integrations/kommo/chat/hook/{setup.scope_id}", content=body, headers=headers)


async def test_a_burst_of_three_messages_gets_one_reply(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup,
    workflow_env: WorkflowEnvironment, sessions: Sessions,
) -> None:
    for text in ("Hi there", "I'm thinking about solar panels", "What warranty do the panels have?"):
        r = await post_hook(client, settings, chat, lead_hook(kommo_sandbox, chat, text))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted"

    async def one_reply() -> bool:
        return len(replies_to(kommo_sandbox, chat)) >= 1

    await skip_until(workflow_env, one_reply, step=SECOND)
    await workflow_env.sleep(timedelta(seconds=6))
    replies = replies_to(kommo_sandbox, chat)
    assert len(replies) == 1
    assert "25-year performance warranty" in replies[0]
    rows = await messages_of(sessions, chat.org_id)
    assert [m.author for m in rows].count(MessageAuthor.lead) == 3
    agent_rows = [m for m in rows if m.author == MessageAuthor.agent]
    assert len(agent_rows) == 1
    assert agent_rows[0].status == MessageStatus.sent
    async with sessions() as session:
        lead = await session.get(Lead, chat.lead_id)
    # Our answer is the lead's last contact (cooldowns and no-reply triggers count from it); its three messages
    # all came before it.
    assert lead is not None
    assert lead.last_contacted_at == agent_rows[0].sent_at
    assert lead.last_replied_at is not None
    assert lead.last_replied_at <= lead.last_contacted_at


async def test_a_manager_message_pauses_the_agent_until_the_window_ends(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, make_chat: ChatFactory,
    workflow_env: WorkflowEnvironment, sessions: Sessions,
) -> None:
    # Windows of seconds: the test holds whether or not the shared test server can skip time right now.
    chat = await make_chat(handoff_seconds=15)
    await post_hook(client, settings, chat, lead_hook(kommo_sandbox, chat, "How long does installation take?"))

    async def replies(n: int) -> bool:
        return len(replies_to(kommo_sandbox, chat)) >= n

    await skip_until(workflow_env, lambda: replies(1), step=SECOND)
    r = await post_hook(client, settings, chat, manager_hook(kommo_sandbox, chat, "Hi Maria, Paulo here."))
    assert r.json()["status"] == "accepted"

    async def handed_off() -> bool:
        row = await conversation_of(sessions, chat)
        return row is not None and row.status.value == "handoff"

    await skip_until(workflow_env, handed_off, step=SECOND)
    row = await conversation_of(sessions, chat)
    assert row is not None
    assert row.handoff_reason == "a manager replied in the chat"
    await post_hook(client, settings, chat, lead_hook(kommo_sandbox, chat, "Thanks Paulo, what about warranty?"))
    await workflow_env.sleep(timedelta(seconds=6))
    assert len(replies_to(kommo_sandbox, chat)) == 1  # paused: the manager answers now

    async with sessions() as session:
        notes = (await session.scalars(select(Notification).where(Notification.org_id == chat.org_id))).all()
    assert [n.kind for n in notes] == ["conversation_handoff"]

    async def resumed() -> bool:
        current = await conversation_of(sessions, chat)
        return current is not None and current.status.value == "active"

    await skip_until(workflow_env, resumed, step=SECOND)
    await post_hook(client, settings, chat, lead_hook(kommo_sandbox, chat, "What warranty do the panels have?"))
    await skip_until(workflow_env, lambda: replies(2), step=SECOND)
    assert "warranty" in replies_to(kommo_sandbox, chat)[1]
    system_notes = [m.text for m in await messages_of(sessions, chat.org_id) if m.author == MessageAuthor.system]
    assert system_notes[0].startswith("Handed off to a person until")
    assert system_notes[1] == "Agent resumed: the handoff window ended"


async def test_a_lead_who_asks_us_to_stop_is_opted_out_its_sequence_stops_and_no_pitch_follows(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup,
    workflow_env: WorkflowEnvironment, temporal_client: Client, sessions: Sessions, tenant: Tenant,
) -> None:
    async with webhook_receiver() as hooks:
        await _opt_out_walk(client, settings, kommo_sandbox, chat, workflow_env, temporal_client, sessions, tenant,
                            hooks)


async def _opt_out_walk(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup,
    workflow_env: WorkflowEnvironment, temporal_client: Client, sessions: Sessions, tenant: Tenant, hooks: Receiver,
) -> None:
    endpoint = await client.post("/api/webhooks", json={"url": hooks.url, "events": ["lead.opted_out"]},
                                 headers=tenant.headers)
    assert endpoint.status_code == 201, endpoint.text
    sequence_id = await make_sequence(sessions, chat.org_id, chat.agent_id, [
        {"type": "wait", "id": "later", "duration": "P3D", "next": "pitch"},
        {"type": "send_message", "id": "pitch", "text": "Our summer offer ends soon!"},
    ])
    async with sessions() as session:
        lead = await session.get(Lead, chat.lead_id)
    assert lead is not None
    [outcome] = await enroll(sessions, temporal_client, settings, chat.org_id, sequence_id, [lead], TASK_QUEUE)
    enrollment_id = outcome.enrollment_id
    assert enrollment_id is not None

    r = await post_hook(client, settings, chat, lead_hook(kommo_sandbox, chat, "Please unsubscribe me."))
    assert r.json()["status"] == "accepted"

    async def enrolment_ended() -> bool:
        return (await enrollment_row(sessions, enrollment_id)).status != EnrollmentStatus.active

    await skip_until(workflow_env, enrolment_ended, step=SECOND)
    row = await enrollment_row(sessions, enrollment_id)
    assert (row.status, row.exit_reason) == (EnrollmentStatus.exited, "opted_out")
    await workflow_env.sleep(timedelta(seconds=10))  # past the debounce window: an answer would have gone out
    assert replies_to(kommo_sandbox, chat) == []
    async with sessions() as session:
        lead = await session.get(Lead, chat.lead_id, populate_existing=True)
        notes = (await session.scalars(select(Notification).where(Notification.org_id == chat.org_id))).all()
    assert lead is not None
    assert lead.opted_out
    assert [(n.kind, n.title) for n in notes] == [("opt_out", "Maria - solar opted out")]
    system_notes = [m.text for m in await messages_of(sessions, chat.org_id) if m.author == MessageAuthor.system]
    assert system_notes == ['The lead opted out ("unsubscribe"): sequences stopped, no further outreach.']

    async def integrator_told() -> bool:
        return len(hooks.received) == 1

    await skip_until(workflow_env, integrator_told, step=SECOND)
    event = json.loads(hooks.received[0][1])
    assert (event["type"], event["data"]["lead_id"], event["data"]["phrase"]) == (
        "lead.opted_out", str(chat.lead_id), "unsubscribe")


async def test_a_handoff_and_the_agents_return_reach_the_integrators_endpoint(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, make_chat: ChatFactory,
    workflow_env: WorkflowEnvironment, tenant: Tenant,
) -> None:
    chat = await make_chat(handoff_seconds=15)
    async with webhook_receiver() as hooks:
        r = await client.post("/api/webhooks", headers=tenant.headers, json={
            "url": hooks.url, "events": ["conversation.handoff", "conversation.resumed"]})
        assert r.status_code == 201, r.text
        await post_hook(client, settings, chat, manager_hook(kommo_sandbox, chat, "Hi Maria, Paulo here."))

        async def both_told() -> bool:
            return len(hooks.received) == 2

        await skip_until(workflow_env, both_told, step=SECOND)
        events = [json.loads(body) for _, body in hooks.received]
    assert [(e["type"], e["data"]["reason"]) for e in events] == [
        ("conversation.handoff", "a manager replied in the chat"),
        ("conversation.resumed", "the handoff window ended")]
    assert events[0]["data"]["lead_id"] == str(chat.lead_id)
    assert events[0]["data"]["until"] is not None


async def test_a_lead_asking_for_a_human_is_handed_off_with_the_reason_recorded(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup,
    workflow_env: WorkflowEnvironment, sessions: Sessions,
) -> None:
    await post_hook(client, settings, chat, lead_hook(kommo_sandbox, chat, "Quero falar com um atendente, por favor"))

    async def handed_off() -> bool:
        row = await conversation_of(sessions, chat)
        return row is not None and row.status.value == "handoff"

    await skip_until(workflow_env, handed_off, step=SECOND)
    row = await conversation_of(sessions, chat)
    assert row is not None
    assert row.handoff_reason == "lead_requested_human"
    assert replies_to(kommo_sandbox, chat) == [
        "Of course — I'm passing you to a colleague who will reply here shortly."
    ]


async def test_an_unanswered_draft_is_sent_when_the_policy_says_send(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, make_chat: ChatFactory,
    workflow_env: WorkflowEnvironment, sessions: Sessions,
) -> None:
    chat = await make_chat(approval_mode=True, approval_timeout_seconds=4, approval_timeout_policy="send")
    await post_hook(client, settings, chat, lead_hook(kommo_sandbox, chat, "What warranty do the panels have?"))

    async def drafted() -> bool:
        return any(m.status == MessageStatus.pending_approval for m in await messages_of(sessions, chat.org_id))

    await skip_until(workflow_env, drafted, step=SECOND)
    assert replies_to(kommo_sandbox, chat) == []

    async def sent() -> bool:
        return len(replies_to(kommo_sandbox, chat)) == 1

    await skip_until(workflow_env, sent, step=SECOND)
    agent = [m for m in await messages_of(sessions, chat.org_id) if m.author == MessageAuthor.agent]
    assert agent[0].status == MessageStatus.sent
    assert agent[0].meta["approval"] == "timeout:send"


async def test_an_unanswered_draft_is_discarded_when_the_policy_says_discard(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, make_chat: ChatFactory,
    workflow_env: WorkflowEnvironment, sessions: Sessions,
) -> None:
    chat = await make_chat(approval_mode=True, approval_timeout_seconds=4, approval_timeout_policy="discard")
    await post_hook(client, settings, chat, lead_hook(kommo_sandbox, chat, "What warranty do the panels have?"))

    async def discarded() -> bool:
        return any(m.status == MessageStatus.discarded for m in await messages_of(sessions, chat.org_id))

    await skip_until(workflow_env, discarded, step=SECOND)
    assert replies_to(kommo_sandbox, chat) == []


async def test_continue_as_new_keeps_the_conversation_context(
    temporal_client: Client, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup,
    workflow_env: WorkflowEnvironment, sessions: Sessions,
) -> None:
    handle = await temporal_client.start_workflow(
        LeadConversationWorkflow.run,
        ConversationInput(org_id=chat.org_id, lead_id=chat.lead_id, debounce_seconds=1, max_turns_per_run=1),
        id=conversation_id(chat.org_id, chat.lead_id), task_queue=TASK_QUEUE,
    )
    first_run = handle.result_run_id

    def message(text: str) -> IncomingMessage:
        return IncomingMessage(message_id=str(uuid.uuid4()), text=text, chat_conversation_id=chat.chat_id,
                               chat_client_id="client-maria")

    await handle.signal(LeadConversationWorkflow.incoming_message,
                        message("Hi, I'm Maria Lopez, my email is maria@example.com"))

    async def replies(n: int) -> bool:
        return len(replies_to(kommo_sandbox, chat)) >= n

    await skip_until(workflow_env, lambda: replies(1), step=SECOND)
    # The first turn asked for the next missing field: the budget.
    assert "budget" in replies_to(kommo_sandbox, chat)[0]
    await deliver_incoming_message(temporal_client, settings, org_id=chat.org_id, lead_id=chat.lead_id,
                                   message=message("Our budget is around $12,000"))
    await skip_until(workflow_env, lambda: replies(2), step=SECOND)
    snapshot = await temporal_client.get_workflow_handle(handle.id).query(LeadConversationWorkflow.snapshot)
    described = await temporal_client.get_workflow_handle(handle.id).describe()
    assert described.run_id != first_run
    assert snapshot.runs >= 2
    assert snapshot.turns == 2
    assert snapshot.fields == {"name": "Maria Lopez", "email": "maria@example.com", "budget": 12000}
    assert "lead: Hi, I'm Maria Lopez" in snapshot.summary
    second = replies_to(kommo_sandbox, chat)[1]
    # Qualified with the name and email from the previous run: it closes instead of asking again.
    assert "personalised quote" in second
    assert "email" not in second.lower()
    # The budget mapped to a Kommo custom field was written to the lead, and it moved to Negotiation.
    lead = kommo_sandbox.lead(chat.account, chat.lead_kommo_id)
    budget = chat.account.lead_field_id("Budget")
    assert any(f.field_id == budget and f.values[0].value == 12000 for f in lead.custom_fields_values or [])
    assert lead.status_id == chat.account.status_id("Negotiation")


async def test_a_duplicate_chat_hook_does_not_produce_a_second_reply(
    client: httpx.AsyncClient, settings: Settings, kommo_sandbox: KommoSandbox, chat: ChatSetup,
    workflow_env: WorkflowEnvironment, sessions: Sessions, temporal_client: Client,
) -> None:
    payload = lead_hook(kommo_sandbox, chat, "How long does installation take?")
    first = await post_hook(client, settings, chat, payload)
    again = await post_hook(client, settings, chat, payload)
    assert (first.json()["status"], again.json()["status"]) == ("accepted", "duplicate")
    # Even a repeat that bypasses the inbox (e.g. the CRM webhook path) is dropped by the workflow.
    repeated = IncomingMessage(message_id=payload["message"]["message"]["id"], text="How long does installation take?",
                               chat_conversation_id=chat.chat_id)
    await deliver_incoming_message(temporal_client, settings, org_id=chat.org_id, lead_id=chat.lead_id,
                                   message=repeated)

    async def replied() -> bool:
        return len(replies_to(kommo_sandbox, chat)) >= 1

    await skip_until(workflow_env, replied, step=SECOND)
    await workflow_env.sleep(timedelta(seconds=6))
    assert len(replies_to(kommo_sandbox, chat)) == 1
    async with sessions() as session:
        inbox = (await session.scalars(select(InboxEvent).where(InboxEvent.org_id == chat.org_id))).all()
    assert len(inbox) == 1
    assert inbox[0].source == "kommo_chat"
    assert inbox[0].outcome == "signalled"
    assert [m.author for m in await messages_of(sessions, chat.org_id)].count(MessageAuthor.lead) == 1


async def test_a_recorded_conversation_still_replays_deterministically() -> None:
    # Recorded from a real run: burst, reply, manager handoff, window end, qualification. A change to the
    # workflow that would break runs in flight fails here; guard such changes with workflow.patched().
    history = WorkflowHistory.from_json(
        "conversation", (HISTORIES / "conversation_v1_burst_handoff_resume.json").read_text()
    )
    replayer = Replayer(workflows=[LeadConversationWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
