"""Outbound webhook deliveries: the signed POST and the bookkeeping of each attempt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from db.repositories.webhooks import WebhookRepository
from integrations.crypto import SecretBox
from integrations.outbound_webhooks import OutboundWebhookClient, WebhookError
from salesflow.settings import Settings
from workflows.ids import TASK_QUEUE


class DeliveryInput(BaseModel):
    """One queued delivery."""

    org_id: uuid.UUID
    delivery_id: uuid.UUID


def webhook_delivery_id(delivery_id: uuid.UUID) -> str:
    """One run per delivery row."""
    return f"webhook-delivery/{delivery_id}"


async def start_deliveries(client: Client, org_id: uuid.UUID, delivery_ids: Sequence[uuid.UUID]) -> None:
    """Start (or join) the delivery workflow of each queued delivery; call after the rows are committed."""
    for delivery_id in delivery_ids:
        await client.start_workflow(
            "WebhookDeliveryWorkflow", DeliveryInput(org_id=org_id, delivery_id=delivery_id),
            id=webhook_delivery_id(delivery_id), task_queue=TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)


class WebhookActivities:
    """Delivery with the HTTP client and the secret box injected."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 client: OutboundWebhookClient | None = None) -> None:
        self.sessions = sessions
        self.box = SecretBox(settings.token_encryption_key)
        self.client = client or OutboundWebhookClient(allow_private=settings.environment != "production")

    @activity.defn(name="webhooks.deliver")
    async def deliver(self, data: DeliveryInput) -> str:
        """POST the event signed with the endpoint's secret; the delivery row records every attempt."""
        async with self.sessions() as session:
            repo = WebhookRepository(session, data.org_id)
            delivery = await repo.delivery(data.delivery_id)
            if delivery is None or delivery.status == "delivered":
                return "delivered" if delivery is not None else "skipped"
            endpoint = await repo.get(delivery.endpoint_id)
            if endpoint is None or not endpoint.enabled:
                delivery.status, delivery.last_error = "skipped", "the endpoint was disabled or deleted"
                await session.commit()
                return "skipped"
            url, secret = endpoint.url, self.box.decrypt(endpoint.secret_enc)
            body = {"id": delivery.event_id, "type": delivery.event_type, "created_at": delivery.created_at,
                    "data": delivery.payload}
        try:
            status = await self.client.post(url, body, delivery.event_id, secret=secret)
        except WebhookError as exc:
            await self._attempt(data, None, str(exc))
            raise ApplicationError(str(exc), non_retryable=not exc.retryable) from exc
        await self._attempt(data, status, None)
        return "delivered"

    async def _attempt(self, data: DeliveryInput, status: int | None, error: str | None) -> None:
        async with self.sessions() as session:
            delivery = await WebhookRepository(session, data.org_id).delivery(data.delivery_id, for_update=True)
            if delivery is not None:
                delivery.attempts += 1
                delivery.last_error = error
                if status is not None:
                    delivery.last_status_code = status
                    delivery.status, delivery.delivered_at = "delivered", datetime.now(UTC)
            await session.commit()

    @activity.defn(name="webhooks.mark_failed")
    async def mark_failed(self, data: DeliveryInput) -> None:
        """The endpoint refused for good, or retries ran out: the log says failed."""
        async with self.sessions() as session:
            delivery = await WebhookRepository(session, data.org_id).delivery(data.delivery_id, for_update=True)
            if delivery is not None and delivery.status == "pending":
                delivery.status = "failed"
            await session.commit()
