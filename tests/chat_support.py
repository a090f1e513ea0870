"""A small realistic playbook (a solar-panel installer) and helpers to seed it, its lead and its Kommo chat.

The same content backs the pure brain tests (``PLAYBOOK``/``PASSAGES``) and the database-backed ones
(``seed_agent``), so both prove the same behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db.models import (
    ActionType,
    Agent,
    AgentAction,
    AgentChannel,
    AgentField,
    AgentObjection,
    AgentRule,
    AgentScript,
    AgentStatus,
    ChannelType,
    Conversation,
    FieldType,
    KnowledgeArticle,
    KnowledgeEntry,
    KnowledgeKind,
    Lead,
    Message,
    RuleKind,
    ScriptStage,
)
from db.models.content import ArticleStatus
from domain.brain import Action, Field, Objection, Passage, Playbook, Rule, Script
from integrations.kommo.sandbox import KommoSandbox, SandboxAccount
from integrations.kommo.signing import sign_body
from salesflow.settings import Settings
from tests.kommo_support import connect_directly
from workflows.ids import conversation_id

Sessions = async_sessionmaker[AsyncSession]

SCRIPTS = [
    ("greeting", "Welcome",
     ["Hi! I'm Sunny from BrightSun Solar. I can answer questions about solar panels for your home."]),
    ("qualification", "Qualify", ["May I have your name?", "What is the best email to send your quote to?",
                                  "What budget do you have in mind for the installation?"]),
    ("closing", "Close", ["Thanks! A solar advisor will send your personalised quote within one business day."]),
]
OBJECTIONS = [
    ("Too expensive", "I understand. Most of our customers finance the system so the monthly payment is lower than "
     "the electricity bill it replaces.", ["too expensive", "can't afford", "costs too much"], "price"),
    ("Need to think about it", "Of course. I can email you a summary so you can compare calmly.",
     ["think about it", "not sure yet"], "timing"),
]
KNOWLEDGE = [
    ("faq", "Warranty", "What warranty do the panels have?", "Our panels carry a 25-year performance warranty and "
     "a 12-year product warranty; installation work is guaranteed for 10 years.", None),
    ("faq", "Installation time", "How long does installation take?", "A typical home installation takes one to two "
     "days once the permit is approved.", None),
    ("text", "Financing", None, None, "We offer financing over 5, 10 or 15 years with no down payment. "
     "Approval usually takes 48 hours. The first installment is due one month after activation."),
    ("text", "Competitor comparison", None, None, "SunCorp panels are cheaper but SunCorp offers a shorter warranty."),
]
ARTICLE = ("Service area", "We install in Lisbon, Porto and the Algarve. Outside these regions we partner with local "
           "installers.")
RULES = [
    (RuleKind.forbid_topic, "Never discuss competitors",
     {"topics": ["SunCorp", "competitor", "competitors"], "response": "I can only speak about BrightSun's own offer."}),
    (RuleKind.max_length, "Keep replies short", {"max_chars": 600}),
    (RuleKind.handoff_when, "Hand legal questions to a person", {"keywords": ["lawyer", "lawsuit"]}),
]
FIELDS = [
    ("name", "Name", FieldType.text, True, {}),
    ("email", "Email", FieldType.email, True, {}),
    ("budget", "Budget", FieldType.number, True, {"min": 1000, "max": 200000}),
    ("roof_type", "Roof type", FieldType.select, False, {"options": ["flat", "pitched", "metal"]}),
]


def playbook() -> Playbook:
    """The playbook as the pure brain sees it."""
    return Playbook(
        agent_name="Sunny", persona="Helpful solar advisor", tone="friendly", language="en",
        scripts=tuple(Script(stage, name, tuple(msgs), i) for i, (stage, name, msgs) in enumerate(SCRIPTS)),
        objections=tuple(Objection(f"obj-{i}", o, a, tuple(t), c) for i, (o, a, t, c) in enumerate(OBJECTIONS)),
        rules=tuple(Rule(kind.value, instruction, params) for kind, instruction, params in RULES),
        fields=tuple(Field(k, label, t.value, req, v) for k, label, t, req, v in FIELDS),
        actions=(Action("move_stage", "Move qualified leads", {"pipeline_id": 1, "status_id": 2}),),
    )


def passages() -> tuple[Passage, ...]:
    """The knowledge as retrieval would return it (every entry, retrieval order)."""
    out = []
    for i, (kind, title, question, answer, content) in enumerate(KNOWLEDGE):
        if kind == "faq":
            out.append(Passage("knowledge", f"k-{i}", title, answer or "", 0.1, question=question))
        else:
            out.append(Passage("knowledge", f"k-{i}", title, content or "", 0.1))
    out.append(Passage("article", "a-0", ARTICLE[0], ARTICLE[1]))
    return tuple(out)


@dataclass
class ChatSetup:
    """A seeded organisation: its sandbox account, agent, lead and the lead's chat id."""

    org_id: uuid.UUID
    account: SandboxAccount
    agent_id: uuid.UUID
    lead_id: uuid.UUID
    lead_kommo_id: int
    chat_id: str
    scope_id: str


async def seed_agent(session: AsyncSession, org_id: uuid.UUID, *, channel_settings: dict[str, Any] | None = None,
                     budget_field_id: int | None = None, move_to: tuple[int, int] | None = None) -> Agent:
    """An active agent with the solar playbook (and an org KB article)."""
    agent = Agent(org_id=org_id, name="Sunny", status=AgentStatus.active, persona="Helpful solar advisor",
                  tone="friendly", language="en")
    session.add(agent)
    await session.flush()
    child = {"org_id": org_id, "agent_id": agent.id}
    for i, (stage, name, msgs) in enumerate(SCRIPTS):
        session.add(AgentScript(**child, stage=ScriptStage(stage), name=name, messages=msgs, position=i))
    for objection, answer, triggers, category in OBJECTIONS:
        session.add(AgentObjection(**child, objection=objection, answer=answer, trigger_phrases=triggers,
                                   category=category))
    for kind, title, question, answer, content in KNOWLEDGE:
        session.add(KnowledgeEntry(**child, kind=KnowledgeKind(kind), title=title, question=question, answer=answer,
                                   content=content, tags=[], ts_config="english"))
    for i, (kind, instruction, params) in enumerate(RULES):
        session.add(AgentRule(**child, kind=kind, instruction=instruction, parameters=params, position=i))
    for key, label, type_, required, validation in FIELDS:
        session.add(AgentField(**child, key=key, label=label, type=type_, required=required, validation=validation,
                               kommo_field_id=budget_field_id if key == "budget" else None))
    if move_to is not None:
        session.add(AgentAction(**child, type=ActionType.move_stage, description="Move qualified leads",
                                parameters={"pipeline_id": move_to[0], "status_id": move_to[1]}))
    session.add(AgentChannel(**child, channel=ChannelType.kommo_chat, settings=channel_settings or {}))
    session.add(KnowledgeArticle(org_id=org_id, title=ARTICLE[0], body=ARTICLE[1], language="en",
                                 status=ArticleStatus.published, tags=[]))
    await session.flush()
    return agent


async def seed_chat(sessions: Sessions, settings: Settings, sandbox: KommoSandbox, org_id: uuid.UUID,
                    **channel_settings: Any) -> ChatSetup:
    """Connect the org to a fresh sandbox account and seed an agent and a lead whose chat is open."""
    account, _ = await connect_directly(sessions, settings, sandbox, org_id)
    kommo_lead = sandbox.add_lead(account, "Maria - solar")
    # A debounce window long enough that a burst posted by a slow test machine still lands in one window.
    settings_ = {"debounce_seconds": 5, "handoff_minutes": 30, **channel_settings}
    async with sessions() as session:
        agent = await seed_agent(session, org_id, channel_settings=settings_,
                                 budget_field_id=account.lead_field_id("Budget"),
                                 move_to=(account.main_pipeline_id, account.status_id("Negotiation")))
        lead = Lead(org_id=org_id, kommo_id=kommo_lead.id, name="Maria - solar", agent_id=agent.id)
        session.add(lead)
        await session.commit()
    return ChatSetup(org_id=org_id, account=account, agent_id=agent.id, lead_id=lead.id, lead_kommo_id=kommo_lead.id,
                     chat_id=str(lead.id), scope_id=account.scope_id)


def lead_hook(sandbox: KommoSandbox, setup: ChatSetup, text: str, message_id: str | None = None) -> dict[str, Any]:
    """A hook for a message the lead wrote (amojo marks the client as the sender)."""
    payload = sandbox.chat_hook_payload(setup.account, setup.chat_id, text, message_id=message_id)
    payload["message"]["sender"] = {"id": str(uuid.uuid4()), "client_id": "client-maria", "name": "Maria"}
    payload["message"].pop("receiver", None)
    return payload


def manager_hook(sandbox: KommoSandbox, setup: ChatSetup, text: str) -> dict[str, Any]:
    """A hook for a message a Kommo user wrote to the lead (the client is the receiver)."""
    return sandbox.chat_hook_payload(setup.account, setup.chat_id, text, client_id="client-maria")


def signed(payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a hook as amojo signs it."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return body, {"Content-Type": "application/json", "X-Signature": sign_body(secret, body)}


def replies_to(sandbox: KommoSandbox, setup: ChatSetup) -> list[str]:
    """Texts the agent delivered into this lead's chat (amojo-deduplicated)."""
    return [m.text or "" for m in sandbox.delivered_messages
            if m.scope_id == setup.scope_id and m.conversation_id == setup.chat_id]


async def conversation_of(sessions: Sessions, setup: ChatSetup) -> Conversation | None:
    """The lead's conversation row."""
    async with sessions() as session:
        return await session.scalar(select(Conversation).where(Conversation.org_id == setup.org_id,
                                                               Conversation.lead_id == setup.lead_id))


async def messages_of(sessions: Sessions, org_id: uuid.UUID) -> list[Message]:
    """Every message of the org, oldest first."""
    async with sessions() as session:
        rows = await session.scalars(select(Message).where(Message.org_id == org_id)
                                     .order_by(Message.created_at, Message.id))
        return list(rows.all())


async def skip_until(env: WorkflowEnvironment, check: Callable[[], Awaitable[bool]], *, step: timedelta,
                     tries: int = 40) -> None:
    """Let workflow time pass in ``step`` jumps until ``check`` holds."""
    for _ in range(tries):
        if await check():
            return
        await env.sleep(step)
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


ChatFactory = Callable[..., Awaitable[ChatSetup]]


@contextlib.asynccontextmanager
async def chat_factory(sessions: Sessions, settings: Settings, sandbox: KommoSandbox, org_id: uuid.UUID,
                       temporal: Client) -> AsyncIterator[ChatFactory]:
    """``await make(**channel_settings)`` seeds a chat; every conversation workflow started is terminated after."""
    made: list[ChatSetup] = []

    async def make(**channel_settings: Any) -> ChatSetup:
        setup = await seed_chat(sessions, settings, sandbox, org_id, **channel_settings)
        made.append(setup)
        return setup

    try:
        yield make
    finally:
        for setup in made:
            with contextlib.suppress(Exception):  # already finished (or never started) is fine
                await temporal.get_workflow_handle(conversation_id(setup.org_id, setup.lead_id)).terminate()
