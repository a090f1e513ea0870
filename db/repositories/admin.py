"""Platform-wide figures for operators. The only repository that reads across tenants, on purpose."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    Agent,
    Conversation,
    EmailOutbox,
    EmailStatus,
    Enrollment,
    EnrollmentStatus,
    InboxEvent,
    Membership,
    Message,
    MessageStatus,
    Notification,
    Organization,
    User,
)


@dataclass
class PlanCounts:
    """Counts of one plan's organisations and what they hold."""

    organizations: int = 0
    users: int = 0
    agents: int = 0
    notifications: int = 0


@dataclass
class PlatformCounts:
    """Totals plus the same counts per plan."""

    organizations: int
    users: int
    agents: int
    notifications: int
    by_plan: dict[str, PlanCounts] = field(default_factory=dict)


class PlatformStatsRepository:
    """Aggregates over every organisation; callers must have checked the platform-admin flag."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _per_plan(self, stmt: Select[str, int]) -> dict[str, int]:
        return {plan: int(count) for plan, count in (await self.session.execute(stmt)).all()}

    async def counts(self) -> PlatformCounts:
        """Organisations, users, live agents and notifications, in total and per plan."""
        plan = Organization.plan
        orgs = await self._per_plan(select(plan, func.count()).group_by(plan))
        # A user in two organisations of one plan counts once for it (and once in the total).
        members = await self._per_plan(
            select(plan, func.count(distinct(Membership.user_id)))
            .join(Organization, Organization.id == Membership.org_id)
            .group_by(plan)
        )
        agents = await self._per_plan(
            select(plan, func.count())
            .select_from(Agent)
            .join(Organization, Organization.id == Agent.org_id)
            .where(Agent.deleted_at.is_(None))
            .group_by(plan)
        )
        notifications = await self._per_plan(
            select(plan, func.count())
            .select_from(Notification)
            .join(Organization, Organization.id == Notification.org_id)
            .group_by(plan)
        )
        by_plan: defaultdict[str, PlanCounts] = defaultdict(PlanCounts)
        for name, count in orgs.items():
            by_plan[name].organizations = count
        for name, count in members.items():
            by_plan[name].users = count
        for name, count in agents.items():
            by_plan[name].agents = count
        for name, count in notifications.items():
            by_plan[name].notifications = count
        users = int(await self.session.scalar(select(func.count()).select_from(User)) or 0)
        return PlatformCounts(
            organizations=sum(orgs.values()),
            users=users,
            agents=sum(agents.values()),
            notifications=sum(notifications.values()),
            by_plan=dict(sorted(by_plan.items())),
        )


class PlatformGaugesRepository:
    """What an operator alerts on, across every organisation: backlogs, live work, things waiting for people."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _by(self, column: Any, *where: Any) -> dict[str, int]:
        rows = await self.session.execute(select(column, func.count()).where(*where).group_by(column))
        return {getattr(key, "value", key): int(count) for key, count in rows}

    async def gauges(self, now: datetime) -> dict[str, Any]:
        """Counts by state, and per inbox source its unprocessed events and the age of the oldest."""
        inbox = {source: (int(count), (now - oldest).total_seconds())
                 for source, count, oldest in await self.session.execute(
                     select(InboxEvent.source, func.count(), func.min(InboxEvent.received_at))
                     .where(InboxEvent.processed_at.is_(None)).group_by(InboxEvent.source))}
        return {
            "organizations": int(await self.session.scalar(select(func.count()).select_from(Organization)) or 0),
            "agents": await self._by(Agent.status, Agent.deleted_at.is_(None)),
            "enrollments": await self._by(Enrollment.status, Enrollment.status.in_(
                [EnrollmentStatus.pending, EnrollmentStatus.active, EnrollmentStatus.paused])),
            "conversations": await self._by(Conversation.status, Conversation.lead_id.is_not(None)),
            "awaiting_approval": int(await self.session.scalar(
                select(func.count()).select_from(Message)
                .where(Message.status == MessageStatus.pending_approval)) or 0),
            "email_outbox": await self._by(EmailOutbox.status, EmailOutbox.status != EmailStatus.sent),
            "inbox": inbox,
        }
