"""Agent lifecycle rules on top of the repository."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.errors import BadRequest, NotFound
from api.services.onboarding import signal_onboarding_step
from db.base import utcnow
from db.models import Agent, AgentStatus
from db.pagination import InvalidCursorError, Page
from db.repositories.agents import AgentRepository
from workflows.onboarding_models import OnboardingStep


class AgentService:
    """Everything the API does to agents, scoped to one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.repo = AgentRepository(session, org_id)
        self.session = session

    async def get(self, agent_id: uuid.UUID) -> Agent:
        """The agent, or 404 (also for another tenant's agent)."""
        agent = await self.repo.get(agent_id)
        if agent is None:
            raise NotFound("Agent not found.")
        return agent

    async def list(
        self, *, limit: int, cursor: str | None, status: AgentStatus | None, name: str | None
    ) -> Page[Agent]:
        """A page of agents; a foreign or damaged cursor is a 400."""
        try:
            return await self.repo.list_for_org(limit=limit, cursor=cursor, status=status, name=name)
        except InvalidCursorError as exc:
            raise BadRequest("cursor is not valid", errors=[{"field": "query.cursor", "message": str(exc)}]) from exc

    async def create(self, **fields: object) -> Agent:
        """Stage a new agent."""
        return await self.repo.add(Agent(**fields))

    async def update(self, agent_id: uuid.UUID, changes: dict[str, object]) -> Agent:
        """Apply a partial update."""
        agent = await self.get(agent_id)
        for key, value in changes.items():
            setattr(agent, key, value)
        agent.updated_at = utcnow()
        await self.session.flush()
        return agent

    async def set_status(self, agent_id: uuid.UUID, status: AgentStatus, temporal: Client | None = None) -> Agent:
        """Change status; any transition between draft, active and paused is allowed.

        Activating an agent completes the organisation's ``agent_live`` onboarding step: the change is
        committed first, then the onboarding run is signalled (no run, or a finished one, is ignored).
        """
        agent = await self.update(agent_id, {"status": status})
        if status == AgentStatus.active and temporal is not None:
            await self.session.commit()
            await signal_onboarding_step(temporal, agent.org_id, OnboardingStep.agent_live)
        return agent

    async def delete(self, agent_id: uuid.UUID) -> None:
        """Soft delete: history keeps pointing at the agent, lists stop showing it.

        The agent is paused first so nothing new is started for it.
        """
        agent = await self.get(agent_id)
        agent.status = AgentStatus.paused
        agent.deleted_at = utcnow()
        await self.session.flush()
