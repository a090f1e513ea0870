"""Password hashing, access tokens (JWT) and refresh-token material."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verifying against this when the email is unknown keeps login timing the same for both cases.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
_ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    """Argon2id hash."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-effort check; a missing hash still costs one verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class AccessClaims:
    """What an access token says about its bearer."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    role: str


def issue_access_token(claims: AccessClaims, secret: str, ttl_seconds: int, now: datetime | None = None) -> str:
    """Short-lived signed token carrying user, organisation and role."""
    now = now or datetime.now(UTC)
    payload = {
        "sub": str(claims.user_id),
        "org": str(claims.org_id),
        "role": claims.role,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
        "typ": "access",
    }
    return jwt.encode(payload, secret, algorithm=_ALGORITHM)


def decode_access_token(token: str, secret: str) -> AccessClaims | None:
    """Claims of a valid, unexpired access token; None for anything else."""
    try:
        payload = jwt.decode(token, secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "org"]})
        if payload.get("typ") != "access":
            return None
        return AccessClaims(uuid.UUID(payload["sub"]), uuid.UUID(payload["org"]), str(payload["role"]))
    except (jwt.PyJWTError, ValueError, KeyError):
        return None


def access_token_expiry(token: str, secret: str) -> datetime | None:
    """When a valid access token expires; None for anything else."""
    try:
        payload = jwt.decode(token, secret, algorithms=[_ALGORITHM], options={"require": ["exp"]})
        return datetime.fromtimestamp(int(payload["exp"]), UTC)
    except (jwt.PyJWTError, ValueError, KeyError, TypeError):
        return None


def new_opaque_token() -> str:
    """A random URL-safe secret (refresh tokens, reset tokens, webhook secrets)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """SHA-256 hex of a high-entropy token; such tokens need no slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()
