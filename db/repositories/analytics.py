"""Reporting queries: what the sequences sent and what came back, conversations, and the state of things now.

Constructed with ``(session, org_id)``; every query filters by it. Aggregation happens in PostgreSQL
(one round trip per figure group, whatever the volume); Python only shapes the result.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Select, and_, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from db.models import (
    Agent,
    AgentStatus,
    Conversation,
    ConversationStatus,
    Enrollment,
    EnrollmentStatus,
    EnrollmentStepLog,
    Lead,
    Message,
    MessageAuthor,
    MessageStatus,
    Organization,
    Sequence,
)

LIVE = (EnrollmentStatus.pending, EnrollmentStatus.active, EnrollmentStatus.paused)


@dataclass(frozen=True)
class SendRow:
    """Sends of one (sequence, step, variant) in a period, and how many the lead answered."""

    sequence_id: uuid.UUID
    step_id: str
    kind: str
    variant: str | None
    sent: int
    replied: int


@dataclass(frozen=True)
class EnrollmentRow:
    """Enrolments of a sequence created in a period, by how they stand now."""

    sequence_id: uuid.UUID
    status: str
    exit_reason: str | None
    count: int


class AnalyticsRepository:
    """Aggregates over step logs, enrolments, conversations and messages of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def time_zone(self) -> str:
        """The organisation's zone, in which reports cut days."""
        zone = await self.session.scalar(select(Organization.time_zone).where(Organization.id == self.org_id))
        return zone or "UTC"

    async def sequence_names(self, agent_id: uuid.UUID | None) -> dict[uuid.UUID, tuple[str, uuid.UUID]]:
        """Every sequence of the organisation (archived too: their history still counts): name and agent."""
        stmt = select(Sequence.id, Sequence.name, Sequence.agent_id).where(Sequence.org_id == self.org_id)
        if agent_id is not None:
            stmt = stmt.where(Sequence.agent_id == agent_id)
        return {row.id: (row.name, row.agent_id) for row in await self.session.execute(stmt)}

    def _enrollment_filters(self, agent_id: uuid.UUID | None, sequence_id: uuid.UUID | None) -> list[Any]:
        filters: list[Any] = [Enrollment.org_id == self.org_id]
        if agent_id is not None:
            filters.append(Enrollment.agent_id == agent_id)
        if sequence_id is not None:
            filters.append(Enrollment.sequence_id == sequence_id)
        return filters

    async def sends(
        self, start: datetime, end: datetime, reply_window: timedelta, *, agent_id: uuid.UUID | None = None,
        sequence_id: uuid.UUID | None = None,
    ) -> list[SendRow]:
        """Messages sequences sent in ``[start, end)`` per step and variant, and how many got a reply.

        A send counts as answered when the lead wrote after it, within ``reply_window`` and before the same
        enrolment's next send: a reply belongs to the latest message it could be answering.
        """
        log = EnrollmentStepLog
        next_send = func.lead(log.sent_at).over(partition_by=log.enrollment_id, order_by=log.sent_at)
        sends = (
            select(Enrollment.lead_id, Enrollment.sequence_id, log.step_id, log.kind,
                   log.payload["variant"].astext.label("variant"), log.sent_at, next_send.label("next_sent_at"))
            .join(Enrollment, Enrollment.id == log.enrollment_id)
            # Sends before the period are never counted nor the "next send" of one inside it.
            .where(log.org_id == self.org_id, log.outcome == "sent", log.sent_at >= start,
                   *self._enrollment_filters(agent_id, sequence_id))
            .subquery()
        )
        deadline = func.least(sends.c.sent_at + reply_window,
                              func.coalesce(sends.c.next_sent_at, sends.c.sent_at + reply_window))
        answered = (
            select(literal(1))
            .select_from(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.org_id == self.org_id, Conversation.lead_id == sends.c.lead_id,
                   Message.org_id == self.org_id, Message.author == MessageAuthor.lead,
                   Message.created_at > sends.c.sent_at, Message.created_at <= deadline)
            .exists()
        )
        stmt = (
            select(sends.c.sequence_id, sends.c.step_id, sends.c.kind, sends.c.variant,
                   func.count().label("sent"), func.count().filter(answered).label("replied"))
            .where(sends.c.sent_at >= start, sends.c.sent_at < end)
            .group_by(sends.c.sequence_id, sends.c.step_id, sends.c.kind, sends.c.variant)
            .order_by(sends.c.sequence_id, sends.c.step_id, sends.c.variant)
        )
        return [SendRow(r.sequence_id, r.step_id, r.kind, r.variant, int(r.sent), int(r.replied))
                for r in await self.session.execute(stmt)]

    async def enrollments(
        self, start: datetime, end: datetime, *, agent_id: uuid.UUID | None = None,
        sequence_id: uuid.UUID | None = None,
    ) -> list[EnrollmentRow]:
        """Enrolments created in ``[start, end)``, counted by their status and exit reason now."""
        stmt = (
            select(Enrollment.sequence_id, Enrollment.status, Enrollment.exit_reason, func.count().label("n"))
            .where(*self._enrollment_filters(agent_id, sequence_id), Enrollment.created_at >= start,
                   Enrollment.created_at < end)
            .group_by(Enrollment.sequence_id, Enrollment.status, Enrollment.exit_reason)
        )
        return [EnrollmentRow(r.sequence_id, r.status.value, r.exit_reason, int(r.n))
                for r in await self.session.execute(stmt)]

    def _messages(self, agent_id: uuid.UUID | None) -> Select[Any]:
        stmt = (select(func.count()).select_from(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.org_id == self.org_id, Conversation.org_id == self.org_id))
        return stmt.where(Conversation.agent_id == agent_id) if agent_id is not None else stmt

    async def conversation_counts(
        self, start: datetime, end: datetime, *, agent_id: uuid.UUID | None = None
    ) -> dict[str, int]:
        """Conversation activity in ``[start, end)``: conversations, lead messages, sent answers, drafts,
        hand-offs, opt-outs and LLM tokens."""
        in_period = and_(Message.created_at >= start, Message.created_at < end)
        event = Message.meta["event"].astext
        tokens = (func.coalesce(Message.meta["prompt_tokens"].astext.cast(Integer), 0)
                  + func.coalesce(Message.meta["completion_tokens"].astext.cast(Integer), 0))
        figures: dict[str, ColumnElement[Any]] = {
            "conversations": func.count(func.distinct(Message.conversation_id)),
            "lead_messages": func.count().filter(Message.author == MessageAuthor.lead),
            "agent_replies": func.count().filter(Message.author == MessageAuthor.agent,
                                                 Message.status == MessageStatus.sent),
            "manager_messages": func.count().filter(Message.author == MessageAuthor.manager),
            "drafts": func.count().filter(Message.author == MessageAuthor.agent,
                                          Message.status.in_([MessageStatus.pending_approval, MessageStatus.rejected,
                                                              MessageStatus.discarded])),
            "handoffs": func.count().filter(Message.author == MessageAuthor.system, event == "handoff"),
            "opt_outs": func.count().filter(Message.author == MessageAuthor.system, event == "opt_out"),
            "llm_tokens": func.coalesce(func.sum(tokens).filter(Message.author == MessageAuthor.agent), 0),
        }
        stmt = self._messages(agent_id).with_only_columns(*(c.label(k) for k, c in figures.items()))
        row = (await self.session.execute(stmt.where(in_period))).one()
        return {key: int(row._mapping[key]) for key in figures}

    async def _count_by(self, column: Any, *where: Any) -> dict[str, int]:
        rows = await self.session.execute(select(column, func.count()).where(*where).group_by(column))
        return {status.value: int(count) for status, count in rows}

    async def now(self, day_start: datetime, day_end: datetime) -> dict[str, dict[str, int]]:
        """How things stand now, plus the traffic of today (``[day_start, day_end)``, local midnights in UTC)."""
        agents = await self._count_by(Agent.status, Agent.org_id == self.org_id, Agent.deleted_at.is_(None))
        live = await self._count_by(Enrollment.status, Enrollment.org_id == self.org_id, Enrollment.status.in_(LIVE))
        conversations = await self._count_by(Conversation.status, Conversation.org_id == self.org_id,
                                             Conversation.lead_id.is_not(None))
        leads = await self.session.scalar(select(func.count()).select_from(Lead).where(Lead.org_id == self.org_id))
        opted_out = await self.session.scalar(select(func.count()).select_from(Lead)
                                              .where(Lead.org_id == self.org_id, Lead.opted_out.is_(True)))
        awaiting = await self.session.scalar(self._messages(None).where(
            Message.status == MessageStatus.pending_approval))
        sent_today = await self.session.scalar(
            select(func.count()).select_from(EnrollmentStepLog)
            .where(EnrollmentStepLog.org_id == self.org_id, EnrollmentStepLog.outcome == "sent",
                   EnrollmentStepLog.sent_at >= day_start, EnrollmentStepLog.sent_at < day_end))
        today = await self.conversation_counts(day_start, day_end)
        return {
            "agents": {status.value: agents.get(status.value, 0) for status in AgentStatus},
            "leads": {"total": int(leads or 0), "opted_out": int(opted_out or 0)},
            "enrollments": {status.value: live.get(status.value, 0) for status in LIVE},
            "conversations": {"active": conversations.get(ConversationStatus.active.value, 0),
                              "handoff": conversations.get(ConversationStatus.handoff.value, 0),
                              "awaiting_approval": int(awaiting or 0)},
            "today": {"sequence_messages": int(sent_today or 0), "lead_messages": today["lead_messages"],
                      "agent_replies": today["agent_replies"]},
        }

    async def daily(
        self, zone: str, start: datetime, end: datetime, *, agent_id: uuid.UUID | None = None
    ) -> dict[str, dict[date, int]]:
        """Per local day of ``zone``: sequence messages, agent replies, lead messages, enrolments started."""

        async def per_day(column: Any, base: Select[Any], *where: Any) -> dict[date, int]:
            local_day = func.date(func.timezone(zone, column))
            stmt = base.with_only_columns(local_day, func.count()).where(column >= start, column < end, *where)
            return {d: int(n) for d, n in await self.session.execute(stmt.group_by(local_day))}

        log = EnrollmentStepLog
        sends = (select(log.id).join(Enrollment, Enrollment.id == log.enrollment_id)
                 .where(log.org_id == self.org_id, log.outcome == "sent", *self._enrollment_filters(agent_id, None)))
        enrolments = select(Enrollment.id).where(*self._enrollment_filters(agent_id, None))
        return {
            "sequence_messages": await per_day(log.sent_at, sends),
            "agent_replies": await per_day(Message.sent_at, self._messages(agent_id),
                                           Message.author == MessageAuthor.agent, Message.status == MessageStatus.sent),
            "lead_messages": await per_day(Message.created_at, self._messages(agent_id),
                                           Message.author == MessageAuthor.lead),
            "enrollments_started": await per_day(Enrollment.created_at, enrolments),
        }
