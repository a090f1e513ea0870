"""Kommo connection, CRM data, webhook and agent-integration request/response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from api.schemas.common import InputModel, ReadModel

KommoId = Annotated[int, Field(ge=1, le=2**62)]
Subdomain = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")]


# ----------------------------------------------------------------------------- connection


class OAuthStartRead(ReadModel):
    """Where to send the user, and the state Kommo will echo back (valid until ``expires_at``)."""

    authorize_url: str
    state: str
    expires_at: datetime


class OAuthCallbackInput(InputModel):
    """What Kommo put on the redirect: ``code``, ``state``, ``referer`` (account domain), ``client_id``."""

    code: str = Field(min_length=1, max_length=4096)
    state: str = Field(min_length=1, max_length=256)
    referer: str = Field(min_length=1, max_length=255)
    client_id: str | None = Field(default=None, max_length=255)


class CredentialsInput(InputModel):
    """A private integration's long-lived token and its account subdomain (``acme`` of acme.kommo.com)."""

    subdomain: Subdomain
    # Kommo tokens are JWTs; anything else could not even be sent as an HTTP header.
    access_token: str = Field(min_length=1, max_length=8192, pattern=r"^[A-Za-z0-9._~+/=-]+$")

    @field_validator("subdomain")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class KommoSettingsRead(ReadModel):
    """Organisation-wide Kommo behaviour."""

    sync_leads: bool = True
    default_responsible_user_id: int | None = None
    lead_tag: str | None = None


class KommoSettingsUpdate(InputModel):
    """Partial update of the Kommo settings; omitted fields keep their value."""

    sync_leads: bool | None = None
    default_responsible_user_id: KommoId | None = None
    lead_tag: str | None = Field(default=None, min_length=1, max_length=64)


class KommoConnectionRead(ReadModel):
    """The organisation's Kommo connection (``status`` ``not_connected`` when there is none yet)."""

    id: uuid.UUID | None = None
    status: str
    connected: bool
    needs_reconnect: bool
    account_id: int | None = None
    subdomain: str | None = None
    long_lived: bool = False
    expires_at: datetime | None = None
    last_synced_at: datetime | None = None
    last_error: str | None = None
    chat_enabled: bool = False
    settings: KommoSettingsRead = Field(default_factory=KommoSettingsRead)


class ConnectResult(ReadModel):
    """A successful connect: the connection, the first sync's run and the periodic schedule.

    ``workflow_id`` is null if the workflow engine could not start the first sync right now (the
    connection is stored either way; ``/sync/pipelines`` starts it later).
    """

    connection: KommoConnectionRead
    workflow_id: str | None
    temporal_url: str | None
    schedule_id: str | None


class WorkflowStarted(ReadModel):
    """A started (or already running) workflow and its Temporal UI link."""

    workflow_id: str
    temporal_url: str


class CrmKommoRead(ReadModel):
    """The connection plus the URL to paste into Kommo's webhook settings."""

    connection: KommoConnectionRead
    webhook_url: str | None


class CrmKommoAction(InputModel):
    """``update`` settings, ``reconnect`` (new OAuth consent), ``disconnect``, or ``rotate_webhook_secret``."""

    action: Literal["update", "reconnect", "disconnect", "rotate_webhook_secret"]
    settings: KommoSettingsUpdate | None = None


class CrmKommoActionResult(ReadModel):
    """The connection after the action; ``authorize_url`` for ``reconnect``."""

    connection: CrmKommoRead
    authorize_url: str | None = None


class ChatReceiver(InputModel):
    """The client the message goes to (our id for them, and optionally their name)."""

    id: str = Field(min_length=1, max_length=255)
    name: str | None = Field(default=None, max_length=255)


class SendMessageInput(InputModel):
    """An outgoing chat message; ``msgid`` (or the Idempotency-Key header) makes a resend a no-op."""

    conversation_id: str = Field(min_length=1, max_length=255)
    text: str = Field(min_length=1, max_length=10_000)
    receiver: ChatReceiver
    msgid: str | None = Field(default=None, min_length=1, max_length=255)


class SendMessageRead(ReadModel):
    """Kommo's ids for the sent message."""

    msgid: str
    conversation_id: str | None
    ref_id: str | None


class TestKommoRead(ReadModel):
    """Result of a live call to the account (development only)."""

    ok: bool
    account_id: int | None = None
    subdomain: str | None = None
    latency_ms: float | None = None
    error: str | None = None


class WebhookAck(ReadModel):
    """How many events of the body were new and how many were redeliveries."""

    accepted: int
    duplicates: int


# ----------------------------------------------------------------------------- CRM data


class CrmStatusRead(ReadModel):
    """A stage of a pipeline."""

    kommo_id: int
    name: str
    sort: int
    type: int
    color: str | None


class CrmPipelineRead(ReadModel):
    """A synced pipeline with its stages in Kommo order."""

    id: uuid.UUID
    kommo_id: int
    name: str
    sort: int
    is_main: bool
    is_archived: bool
    statuses: list[CrmStatusRead]
    updated_at: datetime


# ----------------------------------------------------------------------------- agents


class PipelineSettingsInput(InputModel):
    """Which pipeline and stages the agent works, and where it moves leads (Kommo ids)."""

    pipeline_id: KommoId
    stage_ids: list[KommoId] = Field(default_factory=list, max_length=100)
    qualified_status_id: KommoId | None = None
    handoff_status_id: KommoId | None = None
    lost_status_id: KommoId | None = None


class PipelineSettingsRead(ReadModel):
    """The agent's pipeline settings (``configured`` false and nulls until saved)."""

    agent_id: uuid.UUID
    configured: bool
    pipeline_id: int | None = None
    stage_ids: list[int] = Field(default_factory=list)
    qualified_status_id: int | None = None
    handoff_status_id: int | None = None
    lost_status_id: int | None = None
    updated_at: datetime | None = None


class AgentIntegrationSettings(InputModel):
    """Per-agent behaviour on the CRM."""

    responsible_user_id: KommoId | None = None
    lead_tag: str | None = Field(default=None, min_length=1, max_length=64)
    create_tasks: bool = False


class AgentIntegrationUpdate(InputModel):
    """Partial update of an installed integration."""

    enabled: bool | None = None
    settings: AgentIntegrationSettings | None = None


class AgentIntegrationRead(ReadModel):
    """An integration available to the agent; ``id`` is the organisation's connection id."""

    id: uuid.UUID
    agent_id: uuid.UUID
    kind: Literal["kommo"] = "kommo"
    name: str = "Kommo CRM"
    connection_status: str
    subdomain: str | None
    installed: bool
    enabled: bool
    settings: AgentIntegrationSettings
    installed_at: datetime | None
    last_sync_workflow_id: str | None


class AgentIntegrationStarted(ReadModel):
    """An install/sync that started the CRM sync workflow."""

    integration: AgentIntegrationRead
    workflow_id: str
    temporal_url: str


class AgentCrmConnectionRead(ReadModel):
    """How an agent is wired to the CRM: connection, its integration link and pipeline settings."""

    agent_id: uuid.UUID
    connection: KommoConnectionRead
    integration_id: uuid.UUID | None
    installed: bool
    pipeline_settings: PipelineSettingsRead
