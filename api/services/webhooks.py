"""Outbound webhooks: endpoints with a signing secret, test events, and the delivery log."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from activities.webhooks import start_deliveries
from api.errors import NotFound
from api.schemas.webhooks import (
    WebhookDeliveryRead,
    WebhookEndpointAction,
    WebhookEndpointActionResult,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
)
from db.models import WebhookEndpoint
from db.pagination import Page
from db.repositories.webhooks import WebhookRepository
from integrations.crypto import SecretBox
from salesflow.settings import Settings


def new_secret() -> str:
    """A signing secret in the usual ``whsec_`` shape."""
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookService:
    """Endpoints of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, settings: Settings) -> None:
        self.session = session
        self.org_id = org_id
        self.repo = WebhookRepository(session, org_id)
        self.box = SecretBox(settings.token_encryption_key)

    async def _endpoint(self, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        endpoint = await self.repo.get(endpoint_id, for_update=True)
        if endpoint is None:
            raise NotFound("Webhook endpoint not found.")
        return endpoint

    async def create(self, body: WebhookEndpointCreate) -> WebhookEndpointCreated:
        """A new endpoint; its secret is returned this once."""
        secret = new_secret()
        endpoint = await self.repo.add(url=str(body.url), description=body.description,
                                       events=sorted(set(body.events)), secret_enc=self.box.encrypt(secret),
                                       enabled=True)
        await self.session.commit()
        return WebhookEndpointCreated(**WebhookEndpointRead.model_validate(endpoint).model_dump(), secret=secret)

    async def endpoints(self, *, limit: int, cursor: str | None) -> Page[WebhookEndpoint]:
        """Endpoints, newest first."""
        return await self.repo.endpoints(limit=limit, cursor=cursor)

    async def get(self, endpoint_id: uuid.UUID) -> WebhookEndpointRead:
        """One endpoint."""
        return WebhookEndpointRead.model_validate(await self._endpoint(endpoint_id))

    async def act(self, endpoint_id: uuid.UUID, body: WebhookEndpointAction,
                  temporal: Client) -> WebhookEndpointActionResult:
        """Test, rotate the secret, enable or disable."""
        endpoint = await self._endpoint(endpoint_id)
        secret: str | None = None
        delivery_ids: list[uuid.UUID] = []
        if body.action == "rotate_secret":
            secret = new_secret()
            endpoint.secret_enc = self.box.encrypt(secret)
        elif body.action in ("enable", "disable"):
            endpoint.enabled = body.action == "enable"
        else:
            event_id = f"evt_test_{uuid.uuid4().hex}"
            delivery_ids = await self.repo.emit("webhook.test", event_id, {"endpoint_id": str(endpoint.id)},
                                                only=endpoint.id)
        read = WebhookEndpointRead.model_validate(endpoint)
        await self.session.commit()
        await start_deliveries(temporal, self.org_id, delivery_ids)
        return WebhookEndpointActionResult(endpoint=read, secret=secret,
                                           delivery_id=delivery_ids[0] if delivery_ids else None)

    async def delete(self, endpoint_id: uuid.UUID) -> None:
        """Remove the endpoint and its log; deliveries still queued are skipped."""
        await self.repo.delete(await self._endpoint(endpoint_id))
        await self.session.commit()

    async def deliveries(self, *, endpoint_id: uuid.UUID | None, status: str | None, limit: int,
                         cursor: str | None) -> tuple[list[WebhookDeliveryRead], str | None]:
        """The delivery log, newest first."""
        if endpoint_id is not None:
            await self._endpoint(endpoint_id)
        page = await self.repo.deliveries(endpoint_id=endpoint_id, status=status, limit=limit, cursor=cursor)
        return [WebhookDeliveryRead.model_validate(d) for d in page.items], page.next_cursor
