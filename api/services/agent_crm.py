"""An agent's side of the CRM: its link to the org's Kommo connection and its pipeline settings."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict, NotFound
from api.schemas.kommo import (
    AgentCrmConnectionRead,
    AgentIntegrationRead,
    AgentIntegrationSettings,
    AgentIntegrationUpdate,
    PipelineSettingsInput,
    PipelineSettingsRead,
)
from api.services.agents import AgentService
from api.services.kommo import connection_read
from db.base import utcnow
from db.models import AgentIntegration, AgentPipelineSettings, ConnectionStatus, KommoConnection
from db.repositories.kommo import (
    AgentIntegrationRepository,
    AgentPipelineSettingsRepository,
    CrmMirrorRepository,
    KommoConnectionRepository,
)


def pipeline_settings_read(agent_id: uuid.UUID, row: AgentPipelineSettings | None) -> PipelineSettingsRead:
    """The API view of an agent's pipeline settings (unconfigured when there is no row)."""
    if row is None:
        return PipelineSettingsRead(agent_id=agent_id, configured=False)
    return PipelineSettingsRead(
        agent_id=agent_id, configured=True, pipeline_id=row.pipeline_kommo_id, stage_ids=list(row.stage_kommo_ids),
        qualified_status_id=row.qualified_status_kommo_id, handoff_status_id=row.handoff_status_kommo_id,
        lost_status_id=row.lost_status_kommo_id, updated_at=row.updated_at,
    )


def integration_read(
    agent_id: uuid.UUID, connection: KommoConnection, link: AgentIntegration | None
) -> AgentIntegrationRead:
    """The API view of the org's connection as one agent's integration."""
    return AgentIntegrationRead(
        id=connection.id,
        agent_id=agent_id,
        connection_status=connection.status.value,
        subdomain=connection.subdomain,
        installed=link is not None,
        enabled=link.enabled if link is not None else False,
        settings=AgentIntegrationSettings.model_validate(link.settings if link is not None else {}),
        installed_at=link.installed_at if link is not None else None,
        last_sync_workflow_id=link.last_sync_workflow_id if link is not None else None,
    )


class AgentCrmService:
    """Agent-scoped CRM operations; every agent and integration id is checked against the org."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id
        self.agents = AgentService(session, org_id)
        self.connections = KommoConnectionRepository(session, org_id)
        self.links = AgentIntegrationRepository(session, org_id)
        self.pipeline_settings = AgentPipelineSettingsRepository(session, org_id)
        self.mirror = CrmMirrorRepository(session, org_id)

    async def crm_connection(self, agent_id: uuid.UUID) -> AgentCrmConnectionRead:
        """The org's connection as this agent sees it."""
        await self.agents.get(agent_id)
        connection = await self.connections.get()
        link = await self.links.get(agent_id, connection.id) if connection is not None else None
        return AgentCrmConnectionRead(
            agent_id=agent_id,
            connection=connection_read(connection),
            integration_id=connection.id if connection is not None else None,
            installed=link is not None,
            pipeline_settings=pipeline_settings_read(agent_id, await self.pipeline_settings.get(agent_id)),
        )

    # -- pipeline settings

    async def get_pipeline_settings(self, agent_id: uuid.UUID) -> PipelineSettingsRead:
        """Saved settings, or the unconfigured view."""
        await self.agents.get(agent_id)
        return pipeline_settings_read(agent_id, await self.pipeline_settings.get(agent_id))

    async def save_pipeline_settings(self, agent_id: uuid.UUID, body: PipelineSettingsInput) -> PipelineSettingsRead:
        """Validate every id against the synced pipeline and its statuses, then replace the settings."""
        await self.agents.get(agent_id)
        pipeline = await self.mirror.get_pipeline(body.pipeline_id)
        if pipeline is None or pipeline.is_archived:
            raise BadRequest("Unknown pipeline; sync Kommo pipelines first.",
                             errors=[{"field": "body.pipeline_id", "message": "not a synced pipeline"}])
        by_pipeline = await self.mirror.statuses_by_pipeline([pipeline.kommo_id])
        statuses = {s.kommo_id for s in by_pipeline[pipeline.kommo_id]}
        errors = [
            {"field": f"body.stage_ids.{i}", "message": "not a status of the pipeline"}
            for i, sid in enumerate(body.stage_ids) if sid not in statuses
        ]
        if len(set(body.stage_ids)) != len(body.stage_ids):
            errors.append({"field": "body.stage_ids", "message": "duplicate status ids"})
        for name in ("qualified_status_id", "handoff_status_id", "lost_status_id"):
            value = getattr(body, name)
            if value is not None and value not in statuses:
                errors.append({"field": f"body.{name}", "message": "not a status of the pipeline"})
        if errors:
            raise BadRequest("Some statuses are not in the chosen pipeline.", errors=errors)
        row = await self.pipeline_settings.save(agent_id, {
            "pipeline_kommo_id": body.pipeline_id, "stage_kommo_ids": list(body.stage_ids),
            "qualified_status_kommo_id": body.qualified_status_id, "handoff_status_kommo_id": body.handoff_status_id,
            "lost_status_kommo_id": body.lost_status_id,
        })
        return pipeline_settings_read(agent_id, row)

    # -- integrations

    async def list_integrations(self, agent_id: uuid.UUID) -> list[AgentIntegrationRead]:
        """The org's integrations (today: its Kommo connection) with this agent's state of each."""
        await self.agents.get(agent_id)
        connection = await self.connections.get()
        if connection is None:
            return []
        return [integration_read(agent_id, connection, await self.links.get(agent_id, connection.id))]

    async def _integration(self, agent_id: uuid.UUID, integration_id: uuid.UUID) -> KommoConnection:
        await self.agents.get(agent_id)
        connection = await self.connections.get_by_id(integration_id)
        if connection is None:
            raise NotFound("Integration not found.")
        return connection

    async def get_integration(self, agent_id: uuid.UUID, integration_id: uuid.UUID) -> AgentIntegrationRead:
        """One integration as this agent sees it."""
        connection = await self._integration(agent_id, integration_id)
        return integration_read(agent_id, connection, await self.links.get(agent_id, connection.id))

    async def update_integration(
        self, agent_id: uuid.UUID, integration_id: uuid.UUID, body: AgentIntegrationUpdate
    ) -> AgentIntegrationRead:
        """Enable/disable or change the agent's settings of an installed integration."""
        connection = await self._integration(agent_id, integration_id)
        link = await self.links.get(agent_id, connection.id)
        if link is None:
            raise Conflict("Install the integration for this agent first.")
        if body.enabled is not None:
            link.enabled = body.enabled
        if body.settings is not None:
            user_id = body.settings.responsible_user_id
            if user_id is not None and not await self.mirror.user_exists(user_id):
                raise BadRequest("Unknown Kommo user; sync the account first.",
                                 errors=[{"field": "body.settings.responsible_user_id",
                                          "message": "not a synced user"}])
            link.settings = body.settings.model_dump()
        link.updated_at = utcnow()
        await self.session.flush()
        return integration_read(agent_id, connection, link)

    async def install(
        self, agent_id: uuid.UUID, integration_id: uuid.UUID
    ) -> tuple[KommoConnection, AgentIntegration]:
        """Link the agent to the connected account (idempotent); 409 unless it is connected."""
        connection = await self._integration(agent_id, integration_id)
        if connection.status != ConnectionStatus.connected:
            raise Conflict(f"The Kommo connection is {connection.status.value}; connect it first.")
        return connection, await self.links.install(agent_id, connection.id)

    async def installed(
        self, agent_id: uuid.UUID, integration_id: uuid.UUID
    ) -> tuple[KommoConnection, AgentIntegration]:
        """The connection and the agent's link, for a sync; 409 unless installed and connected."""
        connection = await self._integration(agent_id, integration_id)
        link = await self.links.get(agent_id, connection.id)
        if link is None:
            raise Conflict("Install the integration for this agent first.")
        if connection.status != ConnectionStatus.connected:
            raise Conflict(f"The Kommo connection is {connection.status.value}; connect it first.")
        return connection, link

    async def record_sync(self, agent_id: uuid.UUID, connection: KommoConnection, link: AgentIntegration,
                          workflow_id: str) -> AgentIntegrationRead:
        """Remember the sync run on the link."""
        link.last_sync_workflow_id = workflow_id
        link.updated_at = utcnow()
        await self.session.flush()
        return integration_read(agent_id, connection, link)
