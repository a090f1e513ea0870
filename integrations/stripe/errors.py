"""Typed errors for Stripe API calls, classified for Temporal's retry policy.

``StripeClient`` never retries (Temporal owns retries). An activity maps a ``StripeError`` to
``ApplicationError(non_retryable=not err.retryable)``: a 4xx is a bug or bad input that a retry
cannot fix, while a 429, 5xx, 409 lock conflict or dropped connection is worth another attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "StripeAuthError",
    "StripeBadResponse",
    "StripeConflict",
    "StripeError",
    "StripeIdempotencyError",
    "StripeInvalidRequest",
    "StripeRateLimited",
    "StripeServerError",
    "StripeTransportError",
    "error_from_response",
]


class StripeError(Exception):
    """Base error of every Stripe call: HTTP status, Stripe's error ``type``/``code``/``param``, retryability."""

    default_retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retryable: bool | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.retryable = self.default_retryable if retryable is None else retryable
        self.request_id = request_id
        self.body = body


class StripeAuthError(StripeError):
    """401 (bad or missing API key) or 403 (key lacks permission); fix the configuration."""


class StripeInvalidRequest(StripeError):
    """400/404 and other 4xx: a missing or unknown parameter, an unknown id (``resource_missing``)."""


class StripeIdempotencyError(StripeInvalidRequest):
    """400 ``idempotency_error``: the key was already used with other parameters or another endpoint."""


class StripeConflict(StripeError):
    """409: a concurrent request holds the object or the idempotency key; it is released shortly."""

    default_retryable = True


class StripeRateLimited(StripeError):
    """429 ``rate_limit_error``: too many requests per second for the account."""

    default_retryable = True


class StripeServerError(StripeError):
    """5xx ``api_error`` from Stripe; transient."""

    default_retryable = True


class StripeTransportError(StripeServerError):
    """Timeout or connection failure before a response arrived; transient."""


class StripeBadResponse(StripeError):
    """A 2xx whose body is not the documented shape: a contract bug, not retried."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # httpx.Headers is case-insensitive; a plain dict from a test may not be.
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


def error_from_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> StripeError:
    """Build the ``StripeError`` subclass for a non-2xx response (``body``: parsed JSON, text or None).

    Stripe's ``Stripe-Should-Retry`` header, when present, overrides the status-based guess: Stripe
    knows better than the status code whether the request may succeed on a second try.
    """
    headers = headers or {}
    error = body.get("error") if isinstance(body, Mapping) else None
    fields: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
    message = str(fields.get("message") or (body.strip()[:500] if isinstance(body, str) and body.strip() else ""))
    message = message or f"HTTP {status}"
    kind = fields.get("type")
    kwargs: dict[str, Any] = {
        "status": status,
        "type": str(kind) if kind is not None else None,
        "code": str(fields["code"]) if fields.get("code") is not None else None,
        "param": str(fields["param"]) if fields.get("param") is not None else None,
        "request_id": _header(headers, "request-id"),
        "body": body,
    }
    should_retry = _header(headers, "stripe-should-retry")
    if should_retry in ("true", "false"):
        kwargs["retryable"] = should_retry == "true"

    cls: type[StripeError]
    if status in (401, 403):
        cls = StripeAuthError
    elif status == 429:
        cls = StripeRateLimited
    elif status == 409:
        cls = StripeConflict
    elif status >= 500:
        cls = StripeServerError
    elif kind == "idempotency_error":
        cls = StripeIdempotencyError
    else:
        cls = StripeInvalidRequest
    return cls(message, **kwargs)
