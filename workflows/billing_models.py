"""Input and result of ``BillingEventWorkflow`` (one verified Stripe webhook event)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


class BillingEventInput(BaseModel):
    """The stored event's ids: the workflow re-reads the subscription from Stripe rather than trusting order."""

    inbox_event_id: uuid.UUID
    event_id: str = Field(min_length=1, max_length=255)
    type: str = Field(max_length=100)
    customer_id: str | None = Field(default=None, max_length=255)
    subscription_id: str | None = Field(default=None, max_length=255)
    # Our organisation id as our checkout put it in ``client_reference_id`` (first event of a new customer).
    org_hint: uuid.UUID | None = None


class BillingEventResult(BaseModel):
    """What the event changed; the same text is stored on the inbox row."""

    outcome: str
    org_id: uuid.UUID | None = None
    plan: str | None = None
