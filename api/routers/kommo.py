"""Kommo: connecting (OAuth or long-lived token), settings, synced CRM data, sending, and CRM webhooks in.

Paths follow the seed list: ``/api/integrations/kommo/*``, ``/api/crm/*``, ``/api/kommo/settings`` and
the development-only ``/api/test-kommo``.

The CRM webhook URL (shown by ``GET /api/crm/kommo``) is
``{public_base_url}/api/crm/webhook?org={org_id}&secret={webhook_secret}``: the org id finds the
connection, the secret (compared in constant time) proves the caller is the Kommo account we gave
it to. Kommo does not sign CRM webhooks, so the secret is the only proof; rotate it with
``POST /api/crm/kommo {"action": "rotate_webhook_secret"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import AdminPrincipal, CurrentPrincipal, SessionDep, SettingsDep, TemporalDep
from api.errors import NotFound
from api.schemas.common import Cursor, Limit, ListResponse
from api.schemas.kommo import (
    ConnectResult,
    CredentialsInput,
    CrmKommoAction,
    CrmKommoActionResult,
    CrmKommoRead,
    CrmPipelineRead,
    KommoConnectionRead,
    KommoSettingsRead,
    KommoSettingsUpdate,
    OAuthCallbackInput,
    OAuthStartRead,
    SendMessageInput,
    SendMessageRead,
    TestKommoRead,
    WebhookAck,
    WorkflowStarted,
)
from api.services.crm_webhook import read_limited, receive_crm_webhook
from api.services.kommo import KommoService, after_connect, connection_read, start_crm_sync
from db.models import KommoConnection, Role
from integrations.crypto import SecretBox
from salesflow.crm_schedule import delete_crm_sync_schedule
from salesflow.kommo import KommoAccess
from salesflow.schedules import schedules_unsupported
from salesflow.settings import Settings
from salesflow.trigger_schedule import delete_trigger_clock_schedule


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    access: KommoAccess | None = getattr(app.state, "kommo_access", None)
    if access is not None:
        await access.http.aclose()


router = APIRouter(tags=["kommo"], lifespan=_lifespan)


def get_kommo_access(request: Request) -> KommoAccess:
    """The app's Kommo access (one HTTP pool, shared rate limiter), created on first use."""
    access: KommoAccess | None = getattr(request.app.state, "kommo_access", None)
    if access is None:
        settings: Settings = request.app.state.settings
        access = KommoAccess(request.app.state.sessions, settings, SecretBox(settings.token_encryption_key),
                             httpx.AsyncClient(timeout=15))
        request.app.state.kommo_access = access
    return access


KommoAccessDep = Annotated[KommoAccess, Depends(get_kommo_access)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]


def _service(session: AsyncSession, org_id: uuid.UUID, settings: Settings, access: KommoAccess) -> KommoService:
    return KommoService(session, org_id, settings, access)


def _connected(
    connection: KommoConnection, workflow_id: str | None, schedule_id: str | None, settings: Settings
) -> ConnectResult:
    url = settings.temporal_run_url(workflow_id) if workflow_id else None
    return ConnectResult(connection=connection_read(connection), workflow_id=workflow_id, temporal_url=url,
                         schedule_id=schedule_id)


# ----------------------------------------------------------------------------- /api/integrations/kommo


@router.post("/api/integrations/kommo/oauth/start", response_model=OAuthStartRead)
async def start_kommo_oauth(
    principal: AdminPrincipal, session: SessionDep, settings: SettingsDep, access: KommoAccessDep
) -> OAuthStartRead:
    """Begin OAuth: a single-use state bound to the caller's org and Kommo's consent URL."""
    return await _service(session, principal.org_id, settings, access).start_oauth(principal.user_id)


@router.post("/api/integrations/kommo/oauth/callback", response_model=ConnectResult)
async def complete_kommo_oauth(
    body: OAuthCallbackInput, principal: AdminPrincipal, session: SessionDep, settings: SettingsDep,
    access: KommoAccessDep, temporal: TemporalDep,
) -> ConnectResult:
    """Finish OAuth: check the state, exchange the code, store the tokens and start the first sync."""
    service = _service(session, principal.org_id, settings, access)
    connection = await service.complete_oauth(body.code, body.state, body.referer, body.client_id)
    await session.commit()
    workflow_id, schedule_id = await after_connect(temporal, settings, principal.org_id)
    return _connected(connection, workflow_id, schedule_id, settings)


@router.post("/api/integrations/kommo/credentials", response_model=ConnectResult)
async def connect_kommo_credentials(
    body: CredentialsInput, principal: AdminPrincipal, session: SessionDep, settings: SettingsDep,
    access: KommoAccessDep, temporal: TemporalDep,
) -> ConnectResult:
    """Connect a private integration with a long-lived token (checked against ``/api/v4/account``)."""
    service = _service(session, principal.org_id, settings, access)
    connection = await service.connect_long_lived(body.subdomain, body.access_token)
    await session.commit()
    workflow_id, schedule_id = await after_connect(temporal, settings, principal.org_id)
    return _connected(connection, workflow_id, schedule_id, settings)


@router.get("/api/integrations/kommo/status", response_model=KommoConnectionRead)
async def get_kommo_status(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, access: KommoAccessDep
) -> KommoConnectionRead:
    """Whether Kommo is connected, to which account, and whether it needs reconnecting."""
    return connection_read(await _service(session, principal.org_id, settings, access).get_connection())


@router.post("/api/integrations/kommo/sync/pipelines", response_model=WorkflowStarted, status_code=202)
async def sync_kommo_pipelines(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, access: KommoAccessDep,
    temporal: TemporalDep, idempotency_key: IdempotencyKey = None,
) -> WorkflowStarted:
    """Start (or join the running) CRM sync of the org; answers its workflow id and UI link."""
    await _service(session, principal.org_id, settings, access).require_connected()
    # The sync's business id already makes a repeated request join the running one.
    workflow_id = await start_crm_sync(temporal, settings, principal.org_id, reason="on demand")
    return WorkflowStarted(workflow_id=workflow_id, temporal_url=settings.temporal_run_url(workflow_id))


@router.post("/api/integrations/kommo/messages/send", response_model=SendMessageRead)
async def send_kommo_message(
    body: SendMessageInput, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep,
    access: KommoAccessDep, idempotency_key: IdempotencyKey = None,
) -> SendMessageRead:
    """Send a chat message through Kommo's Chats API (signed); a repeated msgid is not delivered twice."""
    return await _service(session, principal.org_id, settings, access).send_message(body, idempotency_key)


# ----------------------------------------------------------------------------- /api/crm


@router.get("/api/crm/kommo", response_model=CrmKommoRead)
async def get_crm_kommo(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, access: KommoAccessDep
) -> CrmKommoRead:
    """The connection and the webhook URL to register in Kommo (its secret authenticates Kommo)."""
    service = _service(session, principal.org_id, settings, access)
    read = service.crm_read(await service.get_connection())
    if principal.role not in (Role.owner, Role.admin):
        # The URL carries the secret that lets anyone post CRM events for the org: admins only.
        read.webhook_url = None
    return read


@router.post("/api/crm/kommo", response_model=CrmKommoActionResult)
async def update_crm_kommo(
    body: CrmKommoAction, principal: AdminPrincipal, session: SessionDep, settings: SettingsDep,
    access: KommoAccessDep, temporal: TemporalDep,
) -> CrmKommoActionResult:
    """Update settings, reconnect (new consent URL), disconnect, or rotate the webhook secret."""
    service = _service(session, principal.org_id, settings, access)
    connection = await service.require_connection()
    authorize_url = None
    if body.action == "update":
        connection = await service.update_settings(body.settings or KommoSettingsUpdate())
    elif body.action == "reconnect":
        authorize_url = (await service.start_oauth(principal.user_id)).authorize_url
    elif body.action == "rotate_webhook_secret":
        connection = await service.rotate_webhook_secret()
    else:
        connection = await service.disconnect()
        await session.commit()
        try:
            await delete_crm_sync_schedule(temporal, principal.org_id)
            await delete_trigger_clock_schedule(temporal, principal.org_id)
        except Exception as exc:
            # The next scheduled runs find the connection disconnected and delete their schedules themselves.
            if not schedules_unsupported(exc):
                raise
    return CrmKommoActionResult(connection=service.crm_read(connection), authorize_url=authorize_url)


@router.get("/api/crm/pipelines", response_model=ListResponse[CrmPipelineRead])
async def list_crm_pipelines(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, access: KommoAccessDep,
    limit: Limit = 50, cursor: Cursor = None,
) -> ListResponse[CrmPipelineRead]:
    """Synced pipelines with their stages, from our database (run a sync to refresh)."""
    items, next_cursor = await _service(session, principal.org_id, settings, access).list_pipelines(
        limit=limit, cursor=cursor
    )
    return ListResponse(items=items, next_cursor=next_cursor)


@router.post("/api/crm/webhook", response_model=WebhookAck)
async def receive_kommo_crm_webhook(
    request: Request, session: SessionDep, settings: SettingsDep, temporal: TemporalDep,
    org: Annotated[str | None, Query(max_length=64, description="Organisation id from the webhook URL")] = None,
    secret: Annotated[str | None, Query(max_length=128, description="Webhook secret from the webhook URL")] = None,
) -> WebhookAck:
    """Kommo CRM webhook (form-encoded): authenticated by the URL's secret, deduplicated, handed to workflows."""
    body = await read_limited(request.stream())
    accepted, duplicates = await receive_crm_webhook(session, temporal, settings, org, secret, body)
    return WebhookAck(accepted=accepted, duplicates=duplicates)


# ----------------------------------------------------------------------------- /api/kommo/settings


@router.get("/api/kommo/settings", response_model=KommoSettingsRead)
async def get_kommo_settings(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, access: KommoAccessDep
) -> KommoSettingsRead:
    """The organisation's Kommo settings (404 before Kommo was ever connected)."""
    connection = await _service(session, principal.org_id, settings, access).require_connection()
    return connection_read(connection).settings


@router.post("/api/kommo/settings", response_model=KommoSettingsRead)
async def update_kommo_settings(
    body: KommoSettingsUpdate, principal: AdminPrincipal, session: SessionDep, settings: SettingsDep,
    access: KommoAccessDep,
) -> KommoSettingsRead:
    """Change the Kommo settings (partial update)."""
    connection = await _service(session, principal.org_id, settings, access).update_settings(body)
    return connection_read(connection).settings


# ----------------------------------------------------------------------------- development only


def development_only(settings: SettingsDep) -> None:
    """404 outside development, before authentication, so the route does not exist elsewhere."""
    if settings.environment != "development":
        raise NotFound()


@router.get("/api/test-kommo", response_model=TestKommoRead, dependencies=[Depends(development_only)])
async def test_kommo(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, access: KommoAccessDep
) -> TestKommoRead:
    """Connectivity check: one live call to the org's Kommo account (development only)."""
    return await _service(session, principal.org_id, settings, access).test_connection()
