"""Inputs and results of EmailDeliveryWorkflow and the email activities (pydantic, carried by id)."""

from __future__ import annotations

import enum
import uuid

from pydantic import BaseModel


class DeliveryStatus(enum.StrEnum):
    """Where an outbox row ended up (mirrors ``EmailStatus``; workflows cannot import ``db``)."""

    queued = "queued"
    sent = "sent"
    failed = "failed"


class DeliverEmail(BaseModel):
    """Workflow and activity input: one outbox row of one organisation."""

    org_id: uuid.UUID
    outbox_id: uuid.UUID


class MarkEmailFailed(BaseModel):
    """Activity input: give up on a row after the delivery retries ran out."""

    org_id: uuid.UUID
    outbox_id: uuid.UUID
    error: str


class DeliveryResult(BaseModel):
    """What happened to the message."""

    outbox_id: uuid.UUID
    status: DeliveryStatus
