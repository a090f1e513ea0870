"""Stripe integration: API client, webhook signing, typed errors and models, and a local sandbox."""

from integrations.stripe.client import STRIPE_API_BASE, StripeClient, encode_params
from integrations.stripe.errors import (
    StripeAuthError,
    StripeBadResponse,
    StripeConflict,
    StripeError,
    StripeIdempotencyError,
    StripeInvalidRequest,
    StripeRateLimited,
    StripeServerError,
    StripeTransportError,
    error_from_response,
)
from integrations.stripe.models import (
    API_VERSION,
    CheckoutSession,
    Customer,
    Event,
    PortalSession,
    Price,
    Subscription,
)
from integrations.stripe.signing import SignatureError

__all__ = [
    "API_VERSION",
    "STRIPE_API_BASE",
    "CheckoutSession",
    "Customer",
    "Event",
    "PortalSession",
    "Price",
    "SignatureError",
    "StripeAuthError",
    "StripeBadResponse",
    "StripeClient",
    "StripeConflict",
    "StripeError",
    "StripeIdempotencyError",
    "StripeInvalidRequest",
    "StripeRateLimited",
    "StripeServerError",
    "StripeTransportError",
    "Subscription",
    "encode_params",
    "error_from_response",
]
