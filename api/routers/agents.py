"""/api/agents: the AI sales agents of the caller's organisation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentPrincipal, OptionalTemporalDep, SessionDep, SettingsDep, TemporalDep
from api.schemas.agents import AgentCreate, AgentRead, AgentStatusUpdate, AgentUpdate
from api.schemas.common import Cursor, Limit, ListResponse
from api.services.agents import AgentService
from api.services.sequences import SequenceService
from db.models import AgentStatus

router = APIRouter(prefix="/api/agents", tags=["agents"])


@router.get("", response_model=ListResponse[AgentRead])
async def list_agents(
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    status_filter: Annotated[AgentStatus | None, Query(alias="status")] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
) -> ListResponse[AgentRead]:
    """List agents, newest first, filtered by status and name."""
    page = await AgentService(session, principal.org_id).list(
        limit=limit, cursor=cursor, status=status_filter, name=name
    )
    return ListResponse(items=[AgentRead.model_validate(a) for a in page.items], next_cursor=page.next_cursor)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgentRead)
async def create_agent(body: AgentCreate, principal: CurrentPrincipal, session: SessionDep) -> AgentRead:
    """Create an agent (a draft by default)."""
    agent = await AgentService(session, principal.org_id).create(**body.model_dump())
    return AgentRead.model_validate(agent)


@router.get("/{id}", response_model=AgentRead)
async def get_agent(id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> AgentRead:
    """One agent."""
    return AgentRead.model_validate(await AgentService(session, principal.org_id).get(id))


@router.patch("/{id}", response_model=AgentRead)
async def update_agent(
    id: uuid.UUID, body: AgentUpdate, principal: CurrentPrincipal, session: SessionDep
) -> AgentRead:
    """Change an agent's name, persona, tone, language or description."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return AgentRead.model_validate(await AgentService(session, principal.org_id).update(id, changes))


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(
    id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, temporal: TemporalDep, settings: SettingsDep
) -> Response:
    """Delete an agent (soft: history stays) and cancel its running sequence enrolments.

    Its conversations stop answering at once (the brain answers only for active agents) and their
    entity runs end when idle, so no workflow keeps acting for a deleted agent.
    """
    await AgentService(session, principal.org_id).delete(id)
    await SequenceService(session, principal.org_id, temporal, settings).retire_agent(id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/{id}/status", response_model=AgentRead)
async def update_agent_status(
    id: uuid.UUID, body: AgentStatusUpdate, principal: CurrentPrincipal, session: SessionDep,
    temporal: OptionalTemporalDep,
) -> AgentRead:
    """Activate, pause or return an agent to draft (activating one completes onboarding's last step)."""
    agent = await AgentService(session, principal.org_id).set_status(id, body.status, temporal)
    return AgentRead.model_validate(agent)
