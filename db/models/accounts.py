"""Tenants and the people in them: organisations, users, memberships, refresh tokens."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, RecordMixin, TenantMixin


class Role(enum.StrEnum):
    """What a member may do in an organisation."""

    owner = "owner"
    admin = "admin"
    member = "member"


class Organization(RecordMixin, Base):
    """A tenant: one business using salesflow."""

    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    business_hours: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    holidays: Mapped[list[str]] = mapped_column(JSONB, default=list)
    plan: Mapped[str] = mapped_column(String(32), default="trial")
    # The Stripe customer that pays for the organisation, created at its first checkout.
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)


class User(RecordMixin, Base):
    """A person who can sign in; belongs to organisations through memberships."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Operators of the platform itself (not of a tenant); only they see cross-tenant statistics.
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)


class Membership(RecordMixin, TenantMixin, Base):
    """A user's role in an organisation."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(Enum(Role, name="role", native_enum=False, length=16))


class RefreshToken(RecordMixin, TenantMixin, Base):
    """One link of a rotating refresh-token chain; only its hash is stored.

    All tokens issued from one login share a ``family_id`` so reuse of a spent token can revoke the family.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[uuid.UUID]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class PasswordResetToken(RecordMixin, Base):
    """A single-use password-reset token of a user; only its SHA-256 is stored.

    Not tenant data: a password belongs to the user across every organisation they are in.
    """

    __tablename__ = "password_reset_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
