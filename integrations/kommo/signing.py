"""Kommo Chats API (amojo) signatures. Pure functions, no I/O.

Requests *to* amojo carry ``Date``, ``Content-Type``, ``Content-MD5`` and
``X-Signature`` = hex HMAC-SHA1 over ``METHOD\\nMD5\\nContent-Type\\nDate\\nPATH`` keyed with the
channel secret. Hooks *from* amojo to us carry ``X-Signature`` = hex HMAC-SHA1 of the raw body.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from email.utils import format_datetime

__all__ = [
    "content_md5",
    "format_http_date",
    "kommo_signed_headers",
    "sign_body",
    "sign_request",
    "verify_body_signature",
    "verify_request_signature",
]


def content_md5(body: bytes) -> str:
    """Lowercase hex MD5 of the exact body bytes (amojo wants hex, not base64)."""
    # MD5 here is a content checksum mandated by the protocol, not a security primitive.
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def sign_request(secret: str, method: str, content_md5: str, content_type: str, date: str, path: str) -> str:
    """Hex HMAC-SHA1 over ``METHOD\\nMD5\\nContent-Type\\nDate\\nPATH`` (path without query)."""
    message = "\n".join([method.upper(), content_md5, content_type, date, path])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha1).hexdigest()


def verify_request_signature(
    secret: str, method: str, content_md5: str, content_type: str, date: str, path: str, signature: str
) -> bool:
    """Constant-time check of an amojo request signature (hex compared case-insensitively)."""
    expected = sign_request(secret, method, content_md5, content_type, date, path)
    return hmac.compare_digest(expected, signature.strip().lower())


def sign_body(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA1 of the raw body: the ``X-Signature`` of chat hooks Kommo sends to us."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def verify_body_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of a chat hook's ``X-Signature``; False when missing."""
    if not signature:
        return False
    return hmac.compare_digest(sign_body(secret, body), signature.strip().lower())


def format_http_date(when: datetime) -> str:
    """RFC 1123/2822 date with a numeric zone, e.g. ``Sun, 01 Jan 2023 12:00:00 +0000`` as amojo documents."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return format_datetime(when.astimezone(UTC).replace(microsecond=0))


def kommo_signed_headers(
    secret: str,
    method: str,
    path: str,
    body: bytes,
    content_type: str = "application/json",
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers for a signed amojo request: Date, Content-Type, Content-MD5, X-Signature."""
    date = format_http_date(now or datetime.now(UTC))
    md5 = content_md5(body)
    return {
        "Date": date,
        "Content-Type": content_type,
        "Content-MD5": md5,
        "X-Signature": sign_request(secret, method, md5, content_type, date, path),
    }
