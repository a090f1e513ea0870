"""Kommo CRM integration: API v4/OAuth/Chats clients, webhook parsing, signing, and a local sandbox."""

from integrations.kommo.client import (
    AmojoClient,
    KommoClient,
    KommoOAuthClient,
    NoopRateLimiter,
    RateLimiter,
    SlidingWindowRateLimiter,
)
from integrations.kommo.errors import (
    KommoBadRequest,
    KommoBadResponse,
    KommoBlocked,
    KommoError,
    KommoForbidden,
    KommoNotFound,
    KommoPaymentRequired,
    KommoRateLimited,
    KommoServerError,
    KommoTransportError,
    KommoUnauthorized,
    error_from_response,
)
from integrations.kommo.webhooks import CrmEvent, CrmWebhook, WebhookParseError, parse_crm_webhook

__all__ = [
    "AmojoClient",
    "CrmEvent",
    "CrmWebhook",
    "KommoBadRequest",
    "KommoBadResponse",
    "KommoBlocked",
    "KommoClient",
    "KommoError",
    "KommoForbidden",
    "KommoNotFound",
    "KommoOAuthClient",
    "KommoPaymentRequired",
    "KommoRateLimited",
    "KommoServerError",
    "KommoTransportError",
    "KommoUnauthorized",
    "NoopRateLimiter",
    "RateLimiter",
    "SlidingWindowRateLimiter",
    "WebhookParseError",
    "error_from_response",
    "parse_crm_webhook",
]
