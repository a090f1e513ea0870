"""/api/webhooks: endpoints that receive the organisation's events, signed, and the delivery log."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Response, status

from api.deps import AdminPrincipal, CurrentPrincipal, SessionDep, SettingsDep, TemporalDep
from api.schemas.common import Cursor, Limit, ListResponse
from api.schemas.webhooks import (
    WebhookDeliveryRead,
    WebhookEndpointAction,
    WebhookEndpointActionResult,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
)
from api.services.webhooks import WebhookService

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.get("", response_model=ListResponse[WebhookEndpointRead])
async def list_webhook_endpoints(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, limit: Limit = 50, cursor: Cursor = None,
) -> ListResponse[WebhookEndpointRead]:
    """The organisation's webhook endpoints, newest first."""
    page = await WebhookService(session, principal.org_id, settings).endpoints(limit=limit, cursor=cursor)
    return ListResponse(items=[WebhookEndpointRead.model_validate(e) for e in page.items],
                        next_cursor=page.next_cursor)


@router.post("", response_model=WebhookEndpointCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook_endpoint(
    body: Annotated[WebhookEndpointCreate, Body()], principal: AdminPrincipal, session: SessionDep,
    settings: SettingsDep,
) -> WebhookEndpointCreated:
    """Owners and admins: register an endpoint; the answer carries its signing secret, shown only now."""
    return await WebhookService(session, principal.org_id, settings).create(body)


@router.get("/events", response_model=ListResponse[WebhookDeliveryRead])
async def list_webhook_deliveries(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, limit: Limit = 50, cursor: Cursor = None,
    endpoint_id: uuid.UUID | None = None,
    status: Literal["pending", "delivered", "failed", "skipped"] | None = None,
) -> ListResponse[WebhookDeliveryRead]:
    """Every event sent (or being sent) to the endpoints, newest first, with attempts and the last answer."""
    items, next_cursor = await WebhookService(session, principal.org_id, settings).deliveries(
        endpoint_id=endpoint_id, status=status, limit=limit, cursor=cursor)
    return ListResponse(items=items, next_cursor=next_cursor)


@router.get("/{id}", response_model=WebhookEndpointRead)
async def get_webhook_endpoint(
    id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> WebhookEndpointRead:
    """One endpoint."""
    return await WebhookService(session, principal.org_id, settings).get(id)


@router.post("/{id}", response_model=WebhookEndpointActionResult)
async def act_on_webhook_endpoint(
    id: uuid.UUID, body: Annotated[WebhookEndpointAction, Body()], principal: AdminPrincipal, session: SessionDep,
    settings: SettingsDep, temporal: TemporalDep,
) -> WebhookEndpointActionResult:
    """Owners and admins: send a test event, rotate the secret, enable or disable the endpoint."""
    return await WebhookService(session, principal.org_id, settings).act(id, body, temporal)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook_endpoint(
    id: uuid.UUID, principal: AdminPrincipal, session: SessionDep, settings: SettingsDep
) -> Response:
    """Owners and admins: remove an endpoint and its delivery log."""
    await WebhookService(session, principal.org_id, settings).delete(id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
