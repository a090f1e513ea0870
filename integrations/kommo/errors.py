"""Typed errors for Kommo HTTP calls, classified for Temporal's retry policy.

The Kommo clients never retry by themselves (Temporal owns retries). Activities map a
``KommoError`` to ``ApplicationError(non_retryable=not err.retryable,
next_retry_delay=err.retry_after)`` so a 4xx is not retried and a 429/5xx/timeout is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

# A 403 from Kommo after rate-limit abuse carries no Retry-After; the block lasts minutes,
# so a retry sooner than this is wasted and may extend the block.
DEFAULT_BLOCKED_RETRY_AFTER = 60.0


class KommoError(Exception):
    """Base error of every Kommo call: HTTP status, retryability, Retry-After and detail."""

    default_retryable: bool = False

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status}: {detail}" if status is not None else detail)
        self.status = status
        self.detail = detail
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.body = body


class KommoRateLimited(KommoError):
    """429: more than 7 requests/s for the account; retry after a short pause."""

    default_retryable = True


class KommoBlocked(KommoError):
    """403: Kommo blocks an account/IP that keeps exceeding the rate limit.

    Kommo answers 403 both for this block and for a user lacking rights, and the body does not
    reliably tell them apart. We treat every 403 as a temporary block: retryable, with a long
    ``retry_after`` (the header if present, else ``DEFAULT_BLOCKED_RETRY_AFTER``). A genuine
    permission problem is then bounded by the Temporal retry policy's attempts/timeout.
    """

    default_retryable = True


class KommoForbidden(KommoError):
    """403 that is not a rate-limit block, e.g. amojo rejecting a bad or stale signature."""


class KommoUnauthorized(KommoError):
    """401: access token missing, expired or revoked (or a used refresh token); refresh or reconnect."""


class KommoPaymentRequired(KommoError):
    """402: the Kommo account is unpaid; nothing to retry until the customer pays."""


class KommoNotFound(KommoError):
    """404 (or 204 for a single entity): the entity does not exist."""


class KommoBadRequest(KommoError):
    """Any other 4xx, e.g. validation errors or ``limit`` > 250; retrying cannot help."""


class KommoServerError(KommoError):
    """5xx from Kommo; transient, retry."""

    default_retryable = True


class KommoTransportError(KommoError):
    """Timeout or connection failure before a response arrived; retry."""

    default_retryable = True


class KommoBadResponse(KommoError):
    """A 2xx whose body does not match the documented shape; a contract bug, not retried."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header (delta seconds or HTTP date) into seconds, or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _detail_from_body(status: int, body: Any) -> str:
    if isinstance(body, Mapping):
        parts = [str(body[k]) for k in ("title", "detail", "hint") if body.get(k)]
        if "validation-errors" in body:
            parts.append(json.dumps(body["validation-errors"], ensure_ascii=False)[:500])
        if parts:
            return "; ".join(parts)
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return f"HTTP {status}"


def error_from_response(
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
    *,
    forbidden_is_block: bool = True,
) -> KommoError:
    """Build the ``KommoError`` subclass for a non-2xx response (body: parsed JSON or text).

    ``forbidden_is_block``: API v4 answers 403 to rate-limit abuse (``KommoBlocked``, retryable);
    amojo answers 403 to a bad signature (``KommoForbidden``, not retryable).
    """
    headers = headers or {}
    retry_after = parse_retry_after(_header(headers, "retry-after"))
    detail = _detail_from_body(status, body)
    if status == 429:
        return KommoRateLimited(detail, status=status, retry_after=retry_after or 1.0, body=body)
    if status == 403 and not forbidden_is_block:
        return KommoForbidden(detail, status=status, body=body)
    if status == 403:
        return KommoBlocked(detail, status=status, retry_after=retry_after or DEFAULT_BLOCKED_RETRY_AFTER, body=body)
    if status == 401:
        return KommoUnauthorized(detail, status=status, body=body)
    if status == 402:
        return KommoPaymentRequired(detail, status=status, body=body)
    if status == 404:
        return KommoNotFound(detail, status=status, body=body)
    if status >= 500:
        return KommoServerError(detail, status=status, retry_after=retry_after, body=body)
    return KommoBadRequest(detail, status=status, body=body)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # httpx.Headers is case-insensitive already; a plain dict from a test may not be.
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None
