"""SQL of the trigger clock: the leads a tick walks and what has already fired for them.

Constructed with ``(session, org_id)``; every query filters by it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence as Seq
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Lead, TriggerExecution


class TriggerClockRepository:
    """Leads of one organisation in id order, and their trigger executions."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def leads_after(
        self, after: uuid.UUID | None, limit: int, *, unanswered_since: datetime | None = None
    ) -> list[Lead]:
        """Up to ``limit`` leads with ids after ``after``, in id order.

        With ``unanswered_since``, only leads whose last message from us (sent by then) has no reply.
        """
        stmt = select(Lead).where(Lead.org_id == self.org_id)
        if after is not None:
            stmt = stmt.where(Lead.id > after)
        if unanswered_since is not None:
            stmt = stmt.where(
                Lead.last_contacted_at.is_not(None), Lead.last_contacted_at <= unanswered_since,
                or_(Lead.last_replied_at.is_(None), Lead.last_replied_at < Lead.last_contacted_at),
            )
        return list((await self.session.scalars(stmt.order_by(Lead.id).limit(limit))).all())

    async def execution_counts(
        self, lead_ids: Seq[uuid.UUID], trigger_ids: Seq[uuid.UUID]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
        """Executions per (lead, trigger), for per-lead limits."""
        if not lead_ids or not trigger_ids:
            return {}
        rows = await self.session.execute(
            select(TriggerExecution.lead_id, TriggerExecution.trigger_id, func.count())
            .where(TriggerExecution.org_id == self.org_id, TriggerExecution.lead_id.in_(list(lead_ids)),
                   TriggerExecution.trigger_id.in_(list(trigger_ids)))
            .group_by(TriggerExecution.lead_id, TriggerExecution.trigger_id)
        )
        return {(row[0], row[1]): int(row[2]) for row in rows}

    async def executions_for_keys(
        self, lead_ids: Seq[uuid.UUID], event_keys: Seq[str]
    ) -> dict[tuple[uuid.UUID, str, uuid.UUID], bool]:
        """The executions of these leads under these event keys: (lead, key, trigger) -> completed."""
        if not lead_ids or not event_keys:
            return {}
        rows = await self.session.execute(
            select(TriggerExecution.lead_id, TriggerExecution.event_key, TriggerExecution.trigger_id,
                   TriggerExecution.outcome)
            .where(TriggerExecution.org_id == self.org_id, TriggerExecution.lead_id.in_(list(lead_ids)),
                   TriggerExecution.event_key.in_(list(set(event_keys))))
        )
        return {(row[0], row[1], row[2]): bool((row[3] or {}).get("complete")) for row in rows}
