"""Agents of an organisation."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Agent, AgentStatus
from db.pagination import Page, paginate


class AgentRepository:
    """Tenant-scoped access to agents; soft-deleted agents are invisible."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def _scoped(self) -> Select[Agent]:
        return select(Agent).where(Agent.org_id == self.org_id, Agent.deleted_at.is_(None))

    async def get(self, agent_id: uuid.UUID) -> Agent | None:
        """The agent if it belongs to this organisation and is not deleted."""
        return await self.session.scalar(self._scoped().where(Agent.id == agent_id))

    async def list_for_org(
        self,
        *,
        limit: int,
        cursor: str | None,
        status: AgentStatus | None = None,
        name: str | None = None,
    ) -> Page[Agent]:
        """Newest first; ``name`` matches case-insensitively anywhere in the name."""
        stmt = self._scoped()
        if status is not None:
            stmt = stmt.where(Agent.status == status)
        if name:
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(Agent.name.ilike(f"%{escaped}%", escape="\\"))
        return await paginate(self.session, stmt, Agent, limit=limit, cursor=cursor)

    async def add(self, agent: Agent) -> Agent:
        """Stage a new agent of this organisation."""
        agent.org_id = self.org_id
        self.session.add(agent)
        await self.session.flush()
        return agent

    async def count_for_org(self) -> int:
        """Live agents of the organisation (plan limits, onboarding)."""
        stmt = select(func.count()).select_from(Agent).where(
            Agent.org_id == self.org_id, Agent.deleted_at.is_(None)
        )
        return int(await self.session.scalar(stmt) or 0)
