"""Pydantic models of the Stripe objects salesflow reads (API version ``2024-06-20``).

Only the fields we use are declared; anything else Stripe sends is ignored so a new field never
breaks parsing. Expandable references (``customer``, ``subscription``) are read unexpanded: ids.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACTIVE_STATUSES",
    "API_VERSION",
    "CheckoutSession",
    "Customer",
    "Event",
    "EventData",
    "PortalSession",
    "Price",
    "Recurring",
    "StripeList",
    "StripeModel",
    "Subscription",
    "SubscriptionItem",
]

# The version our models follow; the client pins it with ``Stripe-Version`` so the account's
# default version cannot move fields under us (2025-03-31 moved ``current_period_end`` to items).
API_VERSION = "2024-06-20"

# Subscription statuses in which the customer has paid (or is trialing) and keeps access.
ACTIVE_STATUSES = frozenset({"active", "trialing"})

T = TypeVar("T")


class StripeModel(BaseModel):
    """Base: unknown fields ignored, and the objects are read-only snapshots."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class StripeList(StripeModel, Generic[T]):
    """A Stripe list object (``{"object": "list", "data": [...]}``)."""

    object: str = "list"
    data: list[T] = Field(default_factory=list)
    has_more: bool = False
    url: str | None = None


class Customer(StripeModel):
    """A customer (``cus_...``); ``metadata`` carries our ``org_id``."""

    id: str
    object: str = "customer"
    email: str | None = None
    name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    created: int | None = None
    livemode: bool = False


class Recurring(StripeModel):
    """Billing cadence of a recurring price."""

    interval: str
    interval_count: int = 1


class Price(StripeModel):
    """A price (``price_...``); ``lookup_key`` names our plan independently of the id."""

    id: str
    object: str = "price"
    active: bool = True
    currency: str
    unit_amount: int | None = None
    lookup_key: str | None = None
    recurring: Recurring | None = None
    product: str | None = None
    type: str = "recurring"
    metadata: dict[str, str] = Field(default_factory=dict)


class CheckoutSession(StripeModel):
    """A hosted Checkout session (``cs_test_...``); send the customer's browser to ``url``."""

    id: str
    object: str = "checkout.session"
    url: str | None = None
    status: str | None = None
    mode: str
    payment_status: str | None = None
    customer: str | None = None
    subscription: str | None = None
    client_reference_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    success_url: str | None = None
    cancel_url: str | None = None
    expires_at: int | None = None
    created: int | None = None
    livemode: bool = False


class PortalSession(StripeModel):
    """A customer billing portal session (``bps_...``); short-lived, send the browser to ``url``."""

    id: str
    object: str = "billing_portal.session"
    url: str
    customer: str
    return_url: str | None = None
    created: int | None = None
    livemode: bool = False


class SubscriptionItem(StripeModel):
    """One line of a subscription: a price and its quantity."""

    id: str | None = None
    object: str = "subscription_item"
    price: Price
    quantity: int | None = None


class Subscription(StripeModel):
    """A subscription (``sub_...``); ``current_period_end`` is unix seconds."""

    id: str
    object: str = "subscription"
    customer: str
    status: str
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    canceled_at: int | None = None
    ended_at: int | None = None
    current_period_start: int | None = None
    current_period_end: int
    items: StripeList[SubscriptionItem] = Field(default_factory=StripeList[SubscriptionItem])
    metadata: dict[str, str] = Field(default_factory=dict)
    created: int | None = None
    livemode: bool = False

    @property
    def price_ids(self) -> list[str]:
        """Ids of the subscribed prices, in item order."""
        return [item.price.id for item in self.items.data]

    @property
    def is_active(self) -> bool:
        """The customer currently has access (``active`` or ``trialing``)."""
        return self.status in ACTIVE_STATUSES


class EventData(StripeModel):
    """``data`` of an event: the object as it is now, and for updates the fields' previous values."""

    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class Event(StripeModel):
    """A webhook event (``evt_...``). Parse it only after ``signing.verify`` accepted the raw body."""

    id: str
    object: str = "event"
    type: str
    created: int
    livemode: bool = False
    api_version: str | None = None
    data: EventData
