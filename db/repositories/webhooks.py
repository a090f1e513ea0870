"""Webhook endpoints and deliveries of one organisation (constructed with ``(session, org_id)``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import WebhookDelivery, WebhookEndpoint
from db.pagination import Page, paginate
from domain.webhook_events import subscribed


class WebhookRepository:
    """Endpoints, the outbox of deliveries, and the delivery log."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def add(self, **values: Any) -> WebhookEndpoint:
        """A new endpoint."""
        endpoint = WebhookEndpoint(org_id=self.org_id, **values)
        self.session.add(endpoint)
        await self.session.flush()
        return endpoint

    async def get(self, endpoint_id: uuid.UUID, *, for_update: bool = False) -> WebhookEndpoint | None:
        """One of the organisation's endpoints."""
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.org_id == self.org_id, WebhookEndpoint.id == endpoint_id)
        return await self.session.scalar(stmt.with_for_update() if for_update else stmt)

    async def endpoints(self, *, limit: int, cursor: str | None) -> Page[WebhookEndpoint]:
        """Endpoints, newest first."""
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.org_id == self.org_id)
        return await paginate(self.session, stmt, WebhookEndpoint, limit=limit, cursor=cursor)

    async def delete(self, endpoint: WebhookEndpoint) -> None:
        """Remove an endpoint and its delivery log."""
        await self.session.delete(endpoint)

    async def emit(self, event_type: str, event_id: str, data: dict[str, Any],
                   only: uuid.UUID | None = None) -> list[uuid.UUID]:
        """Queue the event for every enabled endpoint subscribed to it (or just ``only``); returns the ids of its
        deliveries, new or already queued by an earlier attempt of the same change."""
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.org_id == self.org_id, WebhookEndpoint.enabled.is_(True))
        if only is not None:
            stmt = stmt.where(WebhookEndpoint.id == only)
        targets = [e.id for e in (await self.session.scalars(stmt)).all() if subscribed(e.events, event_type)]
        if not targets:
            return []
        await self.session.execute(insert(WebhookDelivery).values([
            {"id": uuid.uuid4(), "org_id": self.org_id, "endpoint_id": target, "event_id": event_id,
             "event_type": event_type, "payload": data, "status": "pending", "attempts": 0} for target in targets
        ]).on_conflict_do_nothing(index_elements=[WebhookDelivery.endpoint_id, WebhookDelivery.event_id]))
        rows = await self.session.scalars(select(WebhookDelivery.id).where(
            WebhookDelivery.org_id == self.org_id, WebhookDelivery.event_id == event_id,
            WebhookDelivery.endpoint_id.in_(targets)))
        return list(rows.all())

    async def delivery(self, delivery_id: uuid.UUID, *, for_update: bool = False) -> WebhookDelivery | None:
        """One delivery."""
        stmt = select(WebhookDelivery).where(WebhookDelivery.org_id == self.org_id, WebhookDelivery.id == delivery_id)
        return await self.session.scalar(stmt.with_for_update() if for_update else stmt)

    async def deliveries(self, *, endpoint_id: uuid.UUID | None, status: str | None, limit: int,
                         cursor: str | None) -> Page[WebhookDelivery]:
        """The delivery log, newest first."""
        stmt = select(WebhookDelivery).where(WebhookDelivery.org_id == self.org_id)
        if endpoint_id is not None:
            stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
        if status is not None:
            stmt = stmt.where(WebhookDelivery.status == status)
        return await paginate(self.session, stmt, WebhookDelivery, limit=limit, cursor=cursor)
