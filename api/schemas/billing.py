"""Billing requests and responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import InputModel, ReadModel


class PlanRead(BaseModel):
    """A plan on sale (``purchasable`` when a Stripe price is configured for it)."""

    key: str
    name: str
    monthly_usd: int
    agents: int
    monthly_messages: int
    purchasable: bool


class SubscriptionRead(ReadModel):
    """A Stripe subscription as Stripe last described it."""

    id: uuid.UUID
    stripe_subscription_id: str
    plan: str
    status: str = Field(description="Stripe's status: active, trialing, past_due, canceled, unpaid, incomplete...")
    current_period_end: datetime | None
    cancel_at_period_end: bool
    created_at: datetime
    updated_at: datetime


class BillingRead(BaseModel):
    """The organisation's plan, its subscription and the plans it can buy."""

    enabled: bool = Field(description="False when this installation has no Stripe account configured")
    plan: str
    subscription: SubscriptionRead | None
    plans: list[PlanRead]


class BillingAction(InputModel):
    """``checkout``: start buying ``plan`` (no live subscription yet); ``portal``: manage the subscription."""

    action: Literal["checkout", "portal"]
    plan: Literal["starter", "pro"] | None = None


class BillingRedirect(BaseModel):
    """Where to send the person: Stripe Checkout or the customer portal."""

    url: str


class StripeWebhookAck(BaseModel):
    """The event was stored (or was a duplicate); processing happens in a workflow."""

    received: bool
    duplicate: bool
