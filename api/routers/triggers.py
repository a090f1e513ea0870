"""/api/agents/{id}/triggers: when a CRM event happens to a lead, what the agent does."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import CurrentPrincipal, SessionDep
from api.schemas.common import Cursor, Limit, ListResponse
from api.schemas.sequences import TriggerCreate, TriggerRead, TriggerUpdate
from api.services.sequences import TriggerService
from domain.triggers import TriggerEventType

router = APIRouter(prefix="/api/agents/{id}/triggers", tags=["triggers"])

AgentId = Annotated[uuid.UUID, Path(alias="id", description="Agent id")]
TriggerId = Annotated[uuid.UUID, Path(alias="triggerId")]


@router.get("", response_model=ListResponse[TriggerRead])
async def list_triggers(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None,
    enabled: bool | None = None, event_type: Annotated[TriggerEventType | None, Query()] = None,
) -> ListResponse[TriggerRead]:
    """List the agent's triggers, newest first, filtered by enabled and event type."""
    page = await TriggerService(session, principal.org_id).list_for_agent(
        agent_id, limit=limit, cursor=cursor, enabled=enabled, event_type=event_type.value if event_type else None
    )
    return ListResponse(items=[TriggerRead.model_validate(t) for t in page.items], next_cursor=page.next_cursor)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TriggerRead)
async def create_trigger(
    agent_id: AgentId, body: TriggerCreate, principal: CurrentPrincipal, session: SessionDep
) -> TriggerRead:
    """Create a trigger: event, conditions, actions and a per-lead execution limit."""
    return await TriggerService(session, principal.org_id).create(agent_id, body)


@router.get("/{triggerId}", response_model=TriggerRead)
async def get_trigger(
    agent_id: AgentId, trigger_id: TriggerId, principal: CurrentPrincipal, session: SessionDep
) -> TriggerRead:
    """One trigger."""
    return await TriggerService(session, principal.org_id).get(agent_id, trigger_id)


@router.patch("/{triggerId}", response_model=TriggerRead)
async def update_trigger(
    agent_id: AgentId, trigger_id: TriggerId, body: TriggerUpdate, principal: CurrentPrincipal, session: SessionDep
) -> TriggerRead:
    """Change a trigger (including enabling or disabling it)."""
    return await TriggerService(session, principal.org_id).update(agent_id, trigger_id, body)


@router.delete("/{triggerId}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_trigger(
    agent_id: AgentId, trigger_id: TriggerId, principal: CurrentPrincipal, session: SessionDep
) -> Response:
    """Delete a trigger and its execution history."""
    await TriggerService(session, principal.org_id).delete(agent_id, trigger_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
