"""Helpers for sequence, enrolment and trigger tests: rows built through our own services, a Kommo
sandbox account wired to an organisation, and a network fault injector for "crash after send" tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.schemas.sequences import SequenceCreate
from api.services.sequences import SequenceService
from db.models import (
    Agent,
    AgentChannel,
    AgentStatus,
    ChannelType,
    ConnectionStatus,
    Enrollment,
    EnrollmentStepLog,
    KommoConnection,
    Lead,
    Sequence,
)
from integrations.crypto import SecretBox
from integrations.kommo.sandbox import KommoSandbox, SandboxAccount
from salesflow.enrollment import EnrollOutcome, enroll_leads
from salesflow.sequences import EnrollmentStart, enrollment_summary, start_enrollment_workflow
from salesflow.settings import Settings

ANY_TIME: dict[str, Any] = {"any_time": True}
"""A sequence send window open at every hour of every day (for tests not about windows)."""


async def make_agent(sessions: async_sessionmaker[AsyncSession], org_id: uuid.UUID, *, daily_cap: int | None = None,
                     status: AgentStatus = AgentStatus.active) -> uuid.UUID:
    """An agent, with a kommo_chat channel carrying ``daily_send_cap`` when given."""
    async with sessions() as session:
        agent = Agent(org_id=org_id, name="Closer", status=status)
        session.add(agent)
        await session.flush()
        if daily_cap is not None:
            session.add(AgentChannel(org_id=org_id, agent_id=agent.id, channel=ChannelType.kommo_chat,
                                     settings={"daily_send_cap": daily_cap}))
        await session.commit()
        return agent.id


async def connect_kommo(sessions: async_sessionmaker[AsyncSession], settings: Settings, sandbox: KommoSandbox,
                        org_id: uuid.UUID) -> SandboxAccount:
    """A sandbox account and our connection row for it (tokens and channel secret encrypted)."""
    account = sandbox.add_account(f"acct-{uuid.uuid4().hex[:10]}")
    box = SecretBox(settings.token_encryption_key)
    async with sessions() as session:
        session.add(KommoConnection(
            org_id=org_id, account_id=account.id, subdomain=account.subdomain, base_url=sandbox.base_url,
            status=ConnectionStatus.connected, access_token_enc=box.encrypt(sandbox.long_lived_token(account)),
            long_lived=True, webhook_secret=uuid.uuid4().hex, chat_scope_id=account.scope_id,
            chat_channel_secret_enc=box.encrypt(account.channel_secret),
        ))
        await session.commit()
    return account


async def make_lead(sessions: async_sessionmaker[AsyncSession], org_id: uuid.UUID, sandbox: KommoSandbox | None,
                    account: SandboxAccount | None, *, name: str = "Deal", contact: str = "Ann Lee",
                    time_zone: str | None = None, tags: list[str] | None = None, status_id: int | None = None,
                    kommo_id: int | None = None) -> Lead:
    """A lead in the sandbox (when given) and its mirror row in our database."""
    pipeline_id = None
    if sandbox is not None and account is not None:
        remote = sandbox.add_lead(account, name, status_id=status_id, tags=tags or [])
        kommo_id, pipeline_id, status_id = remote.id, remote.pipeline_id, remote.status_id
    async with sessions() as session:
        lead = Lead(org_id=org_id, kommo_id=kommo_id if kommo_id is not None else uuid.uuid4().int % 10**9,
                    name=name, contact_name=contact, pipeline_kommo_id=pipeline_id, status_kommo_id=status_id,
                    time_zone=time_zone, tags=tags or [])
        session.add(lead)
        await session.commit()
        return lead


async def make_sequence(sessions: async_sessionmaker[AsyncSession], org_id: uuid.UUID, agent_id: uuid.UUID,
                        steps: list[dict[str, Any]], *, send_window: dict[str, Any] | None = None,
                        **fields: Any) -> uuid.UUID:
    """A sequence created through the service (so it is validated and versioned like an API call)."""
    body = SequenceCreate.model_validate({"name": "Follow-up", "steps": steps,
                                          "send_window": ANY_TIME if send_window is None else send_window, **fields})
    async with sessions() as session:
        created = await SequenceService(session, org_id).create(agent_id, body)
        await session.commit()
        return created.id


async def write_enrollments(sessions: async_sessionmaker[AsyncSession], org_id: uuid.UUID, sequence_id: uuid.UUID,
                            leads: list[Lead], request_id: uuid.UUID | None = None) -> list[EnrollOutcome]:
    """Apply the rules and write pending rows for the admitted leads (no workflow is started)."""
    async with sessions() as session:
        sequence = await session.get(Sequence, sequence_id)
        assert sequence is not None
        outcomes = await enroll_leads(session, org_id, sequence, leads, source="test", request_id=request_id,
                                      now=datetime.now(UTC))
        await session.commit()
        return outcomes


async def enroll(sessions: async_sessionmaker[AsyncSession], client: Client, settings: Settings, org_id: uuid.UUID,
                 sequence_id: uuid.UUID, leads: list[Lead], task_queue: str) -> list[EnrollOutcome]:
    """Apply the rules, write the rows and start the admitted enrolments' workflows on ``task_queue``."""
    outcomes = await write_enrollments(sessions, org_id, sequence_id, leads)
    async with sessions() as session:
        sequence = await session.get(Sequence, sequence_id)
        assert sequence is not None
        name = sequence.name
    by_id = {lead.id: lead for lead in leads}
    for outcome in outcomes:
        if outcome.enrolled and outcome.enrollment_id is not None:
            lead = by_id[outcome.lead_id]
            await start_enrollment_workflow(client, settings, EnrollmentStart(
                org_id=org_id, agent_id=sequence.agent_id, sequence_id=sequence_id, lead_id=lead.id,
                enrollment_id=outcome.enrollment_id, summary=enrollment_summary(name, lead)), task_queue=task_queue)
    return outcomes


async def enrollment_row(sessions: async_sessionmaker[AsyncSession], enrollment_id: uuid.UUID) -> Enrollment:
    """The enrolment row as committed."""
    async with sessions() as session:
        row = await session.get(Enrollment, enrollment_id)
        assert row is not None
        return row


async def step_logs(sessions: async_sessionmaker[AsyncSession], enrollment_id: uuid.UUID) -> list[EnrollmentStepLog]:
    """The enrolment's step log, oldest first."""
    async with sessions() as session:
        rows = await session.scalars(select(EnrollmentStepLog).where(EnrollmentStepLog.enrollment_id == enrollment_id)
                                     .order_by(EnrollmentStepLog.created_at, EnrollmentStepLog.id))
        return list(rows.all())


async def until(predicate: Callable[[], Awaitable[bool]], attempts: int = 600) -> None:
    """Poll ``predicate`` until true (real time: the test server does not skip time while we poll)."""
    for _ in range(attempts):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def next_transition(zone: str, after: datetime) -> datetime:
    """The next UTC-offset change of ``zone`` after ``after`` (to the hour; searched a year ahead)."""
    tz = ZoneInfo(zone)
    offset = after.astimezone(tz).utcoffset()
    probe = after.replace(minute=0, second=0, microsecond=0)
    for _ in range(24 * 400):
        probe += timedelta(hours=1)
        if probe.astimezone(tz).utcoffset() != offset:
            return probe
    raise AssertionError(f"{zone} has no transition within a year")


class FlakyTransport(httpx.AsyncBaseTransport):
    """Real HTTP, except that chosen requests lose their response *after* the server handled them.

    That is the worst moment for a send: the message went out, but we cannot know it. A rule is a
    predicate on the request; each rule fires once.
    """

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.rules: list[Callable[[httpx.Request], bool]] = []
        self.dropped = 0

    def drop_once(self, rule: Callable[[httpx.Request], bool]) -> None:
        """Lose the response of the next request matching ``rule``."""
        self.rules.append(rule)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward, then maybe pretend the connection died before the answer arrived."""
        response = await self.inner.handle_async_request(request)
        for i, rule in enumerate(self.rules):
            if rule(request):
                del self.rules[i]
                await response.aread()
                await response.aclose()
                self.dropped += 1
                raise httpx.ReadError("connection reset before the response arrived", request=request)
        return response

    async def aclose(self) -> None:
        """Close the real transport."""
        await self.inner.aclose()
