"""/api/agents/{id}/...: an agent's CRM connection, pipeline settings and integrations."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, TemporalDep
from api.errors import BadRequest
from api.routers.kommo import IdempotencyKey
from api.schemas.common import Cursor, Limit, ListResponse
from api.schemas.kommo import (
    AgentCrmConnectionRead,
    AgentIntegrationRead,
    AgentIntegrationStarted,
    AgentIntegrationUpdate,
    PipelineSettingsInput,
    PipelineSettingsRead,
)
from api.services.agent_crm import AgentCrmService
from api.services.kommo import start_crm_sync

router = APIRouter(prefix="/api/agents/{id}", tags=["agents", "kommo"])


@router.get("/crm-connection", response_model=AgentCrmConnectionRead)
async def get_agent_crm_connection(
    id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> AgentCrmConnectionRead:
    """The org's Kommo connection as this agent uses it (link and pipeline settings)."""
    return await AgentCrmService(session, principal.org_id).crm_connection(id)


@router.get("/pipeline-settings", response_model=PipelineSettingsRead)
async def get_agent_pipeline_settings(
    id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> PipelineSettingsRead:
    """Which pipeline/stages the agent works and where it moves leads."""
    return await AgentCrmService(session, principal.org_id).get_pipeline_settings(id)


@router.post("/pipeline-settings", response_model=PipelineSettingsRead)
async def save_agent_pipeline_settings(
    id: uuid.UUID, body: PipelineSettingsInput, principal: CurrentPrincipal, session: SessionDep
) -> PipelineSettingsRead:
    """Replace the agent's pipeline settings; every id must be a synced pipeline/status."""
    return await AgentCrmService(session, principal.org_id).save_pipeline_settings(id, body)


@router.get("/integrations", response_model=ListResponse[AgentIntegrationRead])
async def list_agent_integrations(
    id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> ListResponse[AgentIntegrationRead]:
    """The org's integrations with this agent's state of each (one page: an org has at most one)."""
    if cursor:
        # We never hand out a cursor for this list, so any value is not ours.
        raise BadRequest("cursor is not valid", errors=[{"field": "query.cursor", "message": "unknown cursor"}])
    items = await AgentCrmService(session, principal.org_id).list_integrations(id)
    return ListResponse(items=items[:limit], next_cursor=None)


@router.get("/integrations/{integration_id}", response_model=AgentIntegrationRead)
async def get_agent_integration(
    id: uuid.UUID, integration_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> AgentIntegrationRead:
    """One integration as this agent sees it."""
    return await AgentCrmService(session, principal.org_id).get_integration(id, integration_id)


@router.patch("/integrations/{integration_id}", response_model=AgentIntegrationRead)
async def update_agent_integration(
    id: uuid.UUID, integration_id: uuid.UUID, body: AgentIntegrationUpdate, principal: CurrentPrincipal,
    session: SessionDep,
) -> AgentIntegrationRead:
    """Enable/disable an installed integration or change the agent's settings of it."""
    return await AgentCrmService(session, principal.org_id).update_integration(id, integration_id, body)


@router.post("/integrations/{integration_id}/install", response_model=AgentIntegrationStarted, status_code=202)
async def install_agent_integration(
    id: uuid.UUID, integration_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep,
    settings: SettingsDep, temporal: TemporalDep, idempotency_key: IdempotencyKey = None,
) -> AgentIntegrationStarted:
    """Link the org's Kommo connection to the agent and start a CRM sync (idempotent)."""
    service = AgentCrmService(session, principal.org_id)
    connection, link = await service.install(id, integration_id)
    await session.commit()
    workflow_id = await start_crm_sync(temporal, settings, principal.org_id, reason=f"installed for agent {id}")
    read = await service.record_sync(id, connection, link, workflow_id)
    return AgentIntegrationStarted(integration=read, workflow_id=workflow_id,
                                   temporal_url=settings.temporal_run_url(workflow_id))


@router.post("/integrations/{integration_id}/sync", response_model=AgentIntegrationStarted, status_code=202)
async def sync_agent_integration(
    id: uuid.UUID, integration_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep,
    settings: SettingsDep, temporal: TemporalDep, idempotency_key: IdempotencyKey = None,
) -> AgentIntegrationStarted:
    """Start (or join the running) CRM sync for an installed integration."""
    service = AgentCrmService(session, principal.org_id)
    connection, link = await service.installed(id, integration_id)
    workflow_id = await start_crm_sync(temporal, settings, principal.org_id, reason=f"requested for agent {id}")
    read = await service.record_sync(id, connection, link, workflow_id)
    return AgentIntegrationStarted(integration=read, workflow_id=workflow_id,
                                   temporal_url=settings.temporal_run_url(workflow_id))

