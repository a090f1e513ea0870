"""Outbound webhooks: endpoints an organisation registers and every delivery made to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, RecordMixin, TenantMixin


class WebhookEndpoint(RecordMixin, TenantMixin, Base):
    """Where to POST which events; the signing secret is stored encrypted and shown once, at creation."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_org_created", "org_id", "created_at", "id"),)

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    # Empty: every event.
    events: Mapped[list[str]] = mapped_column(JSONB, default=list)
    secret_enc: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class WebhookDelivery(RecordMixin, TenantMixin, Base):
    """One event for one endpoint: written with the change that caused it, then delivered by a workflow."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # An event reaches an endpoint once, however often the code that emits it is retried.
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_org_created", "org_id", "created_at", "id"),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # pending -> delivered | failed | skipped (endpoint disabled or deleted before delivery)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
