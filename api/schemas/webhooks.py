"""Outbound webhook endpoints and their delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

from api.schemas.common import InputModel, ReadModel
from domain.webhook_events import EVENT_TYPES, EventType


class WebhookEndpointCreate(InputModel):
    """Where to POST events (``events`` empty: all of them)."""

    url: AnyHttpUrl
    description: str = Field(default="", max_length=500)
    events: list[EventType] = Field(default_factory=list, max_length=len(EVENT_TYPES))

    @field_validator("url")
    @classmethod
    def _short(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > 2000:
            raise ValueError("the URL is longer than 2000 characters")
        return value


class WebhookEndpointRead(ReadModel):
    """An endpoint (its secret is only shown when created or rotated)."""

    id: uuid.UUID
    url: str
    description: str
    events: list[str]
    enabled: bool
    created_at: datetime


class WebhookEndpointCreated(WebhookEndpointRead):
    """The endpoint and its signing secret: store it now, it is not shown again."""

    secret: str


class WebhookEndpointAction(InputModel):
    """``test``: send a ``webhook.test`` event now; ``rotate_secret``: a new secret (returned once);
    ``enable`` / ``disable``."""

    action: Literal["test", "rotate_secret", "enable", "disable"]


class WebhookEndpointActionResult(BaseModel):
    """The endpoint after the action; ``secret`` after a rotation, ``delivery_id`` after a test."""

    endpoint: WebhookEndpointRead
    secret: str | None = None
    delivery_id: uuid.UUID | None = None


class WebhookDeliveryRead(ReadModel):
    """One event for one endpoint and how its delivery went."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: str
    event_type: str
    payload: dict[str, Any]
    status: str = Field(description="pending, delivered, failed or skipped")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
