"""Auth request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import available_timezones

from pydantic import EmailStr, Field, field_validator

from api.schemas.common import InputModel, ReadModel
from db.models import Role

_ZONES = available_timezones()


def validate_time_zone(value: str) -> str:
    """IANA zone names only; they drive every send window."""
    if value not in _ZONES:
        raise ValueError("unknown IANA time zone")
    return value


class RegisterCreate(InputModel):
    """Sign up: creates the organisation and its owner."""

    email: EmailStr
    password: str = Field(min_length=8, max_length=128)
    full_name: str = Field(default="", max_length=200)
    organization_name: str = Field(min_length=1, max_length=200)
    time_zone: str = Field(default="UTC", max_length=64)
    locale: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")

    _tz = field_validator("time_zone")(validate_time_zone)


class LoginCreate(InputModel):
    """Email and password."""

    email: EmailStr
    password: str = Field(min_length=1, max_length=128)


class RefreshCreate(InputModel):
    """A refresh token to rotate (or revoke, on logout)."""

    refresh_token: str = Field(min_length=10, max_length=256)


class TokenRead(ReadModel):
    """A token pair; the refresh token is single-use."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    user_id: uuid.UUID
    org_id: uuid.UUID


class RegisterRead(TokenRead):
    """Registration result: tokens plus the onboarding run that started."""

    onboarding_workflow_id: str
    onboarding_url: str


class PasswordResetRequestCreate(InputModel):
    """Ask for a reset link; the answer is the same whether or not the email has an account."""

    email: EmailStr


class PasswordResetConfirmCreate(InputModel):
    """A reset token from the email and the new password."""

    token: str = Field(min_length=10, max_length=256)
    new_password: str = Field(min_length=8, max_length=128)


class AcceptedRead(ReadModel):
    """A request was accepted; ``detail`` says what happens next."""

    detail: str


class SessionUserRead(ReadModel):
    """The signed-in user."""

    id: uuid.UUID
    email: str
    full_name: str


class SessionOrganizationRead(ReadModel):
    """The organisation the session is signed in to, with its app URL."""

    id: uuid.UUID
    name: str
    slug: str
    app_url: str


class SessionRead(ReadModel):
    """The current session: who, where, with which role, and when the access token expires."""

    user: SessionUserRead
    organization: SessionOrganizationRead
    role: Role
    expires_at: datetime


class TenantRedirectRead(ReadModel):
    """Where to send the browser; the same shape (and, for email input, the same value) for any input."""

    redirect_url: str
