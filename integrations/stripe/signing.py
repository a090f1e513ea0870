"""Stripe webhook signatures. Pure functions, no I/O.

Stripe signs each delivery with ``Stripe-Signature: t=<unix>,v1=<hex>`` where the hex is
HMAC-SHA256 keyed with the endpoint's ``whsec_...`` secret over ``f"{t}.{raw body}"``. While a
secret is being rolled, the header carries one ``v1`` per active secret, so any match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["DEFAULT_TOLERANCE", "SCHEME", "SignatureError", "compute_signature", "sign", "verify"]

SCHEME = "v1"
# Stripe's libraries default to five minutes: long enough for clock skew and slow delivery,
# short enough that a captured delivery cannot be replayed much later.
DEFAULT_TOLERANCE = 300


class SignatureError(Exception):
    """The ``Stripe-Signature`` header is missing, malformed, wrong, or too old/new."""


def compute_signature(secret: str, payload: bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``b"{timestamp}." + payload`` keyed with ``secret``."""
    message = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, payload: bytes, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` sent at ``timestamp``."""
    return f"t={timestamp},{SCHEME}={compute_signature(secret, payload, timestamp)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value.strip())
        elif key == SCHEME:
            signatures.append(value.strip())
    if len(timestamps) != 1:
        raise SignatureError("Stripe-Signature must carry exactly one timestamp (t=)")
    try:
        timestamp = int(timestamps[0])
    except ValueError:
        raise SignatureError("Stripe-Signature timestamp is not an integer") from None
    if not signatures:
        raise SignatureError(f"Stripe-Signature has no {SCHEME} signature")
    return timestamp, signatures


def verify(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a delivery's ``Stripe-Signature`` against the raw body; return its timestamp.

    Raises ``SignatureError`` when the header is missing or malformed, when no ``v1`` matches,
    or when the timestamp is more than ``tolerance`` seconds away from ``now`` (default: the
    system clock). Unlike Stripe's libraries, a timestamp from the future is bounded too, so
    the replay window of a captured delivery stays ``tolerance`` even if our clock lags.
    """
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp, signatures = _parse(header)
    expected = compute_signature(secret, payload, timestamp).encode()
    # Every candidate is compared (no early exit) so timing does not reveal which one matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("no Stripe-Signature v1 matches the payload")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(f"Stripe-Signature timestamp {timestamp} is outside the {tolerance}s tolerance")
    return timestamp
