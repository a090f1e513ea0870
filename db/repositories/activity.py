"""The organisation's activity feed: messages, enrolments starting and ending, notifications, in time order.

Constructed with ``(session, org_id)``; every query filters by it. Rows are ordered by ``(at, kind, id)``
so two events of one row (an enrolment's start and end) and equal timestamps still have a strict order
for the feed's cursor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, literal, or_, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Conversation, Enrollment, Message, Notification, Sequence

SUMMARY_CHARS = 200


@dataclass(frozen=True)
class ActivityRow:
    """One event of the feed."""

    at: datetime
    kind: str
    id: uuid.UUID
    lead_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    summary: str


class ActivityRepository:
    """Reads the feed of one organisation (and of one user, for personal notifications)."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def _events(self, user_id: uuid.UUID, since: datetime, until: datetime) -> Any:
        no_agent = cast(None, Conversation.agent_id.type)
        messages = (
            select(Message.created_at.label("at"), ("message." + cast(Message.author, String)).label("kind"),
                   Message.id.label("id"), Conversation.lead_id.label("lead_id"),
                   Conversation.agent_id.label("agent_id"), func.left(Message.text, SUMMARY_CHARS).label("summary"))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.org_id == self.org_id, Conversation.org_id == self.org_id, Conversation.lead_id.is_not(None),
                   Message.created_at >= since, Message.created_at < until)
        )
        started = (
            select(Enrollment.created_at.label("at"), literal("enrollment.started").label("kind"),
                   Enrollment.id.label("id"), Enrollment.lead_id.label("lead_id"),
                   Enrollment.agent_id.label("agent_id"),
                   func.left(Sequence.name, SUMMARY_CHARS).label("summary"))
            .join(Sequence, Sequence.id == Enrollment.sequence_id)
            .where(Enrollment.org_id == self.org_id, Enrollment.created_at >= since, Enrollment.created_at < until)
        )
        ended = (
            select(Enrollment.finished_at.label("at"), literal("enrollment.ended").label("kind"),
                   Enrollment.id.label("id"), Enrollment.lead_id.label("lead_id"),
                   Enrollment.agent_id.label("agent_id"),
                   func.left(func.concat(Sequence.name, ": ", cast(Enrollment.status, String),
                                         func.coalesce(" (" + Enrollment.exit_reason + ")", "")),
                             SUMMARY_CHARS).label("summary"))
            .join(Sequence, Sequence.id == Enrollment.sequence_id)
            .where(Enrollment.org_id == self.org_id, Enrollment.finished_at.is_not(None),
                   Enrollment.finished_at >= since, Enrollment.finished_at < until)
        )
        notifications = (
            select(Notification.created_at.label("at"), literal("notification").label("kind"),
                   Notification.id.label("id"), cast(None, Enrollment.lead_id.type).label("lead_id"),
                   no_agent.label("agent_id"), func.left(Notification.title, SUMMARY_CHARS).label("summary"))
            .where(Notification.org_id == self.org_id,
                   or_(Notification.user_id.is_(None), Notification.user_id == user_id),
                   Notification.created_at >= since, Notification.created_at < until)
        )
        return union_all(messages, started, ended, notifications).subquery()

    async def after(
        self, user_id: uuid.UUID, position: tuple[datetime, str, uuid.UUID], until: datetime, limit: int
    ) -> list[ActivityRow]:
        """Events strictly after ``position`` and before ``until``, oldest first."""
        events = self._events(user_id, position[0], until)
        stmt = (select(events).where(tuple_(events.c.at, events.c.kind, events.c.id) > tuple_(*position))
                .order_by(events.c.at, events.c.kind, events.c.id).limit(limit))
        return [ActivityRow(*row) for row in await self.session.execute(stmt)]

    async def latest(self, user_id: uuid.UUID, since: datetime, until: datetime, limit: int) -> list[ActivityRow]:
        """The newest ``limit`` events in ``[since, until)``, oldest first."""
        events = self._events(user_id, since, until)
        stmt = select(events).order_by(events.c.at.desc(), events.c.kind.desc(), events.c.id.desc()).limit(limit)
        return [ActivityRow(*row) for row in reversed(list(await self.session.execute(stmt)))]
