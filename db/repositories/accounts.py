"""Organisations, users, memberships, refresh tokens and password-reset tokens."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import Membership, Organization, PasswordResetToken, RefreshToken, Role, User


class OrganizationRepository:
    """Tenant records."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, org_id: uuid.UUID) -> Organization | None:
        """The organisation, or None."""
        return await self.session.get(Organization, org_id)

    async def get_by_slug(self, slug: str) -> Organization | None:
        """The organisation with this slug, or None."""
        return await self.session.scalar(select(Organization).where(Organization.slug == slug))

    async def slug_taken(self, slug: str) -> bool:
        """Whether an organisation already uses this slug."""
        return (await self.session.scalar(select(Organization.id).where(Organization.slug == slug))) is not None

    async def add(self, org: Organization) -> Organization:
        """Stage a new organisation (flushed so its id is usable)."""
        self.session.add(org)
        await self.session.flush()
        return org


class UserRepository:
    """Users and their memberships."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        """The user, or None."""
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        """Lookup by normalised (lower-case) email."""
        return await self.session.scalar(select(User).where(User.email == email.lower()))

    async def add(self, user: User) -> User:
        """Stage a new user."""
        self.session.add(user)
        await self.session.flush()
        return user

    async def add_membership(self, org_id: uuid.UUID, user_id: uuid.UUID, role: Role) -> Membership:
        """Give the user a role in the organisation."""
        membership = Membership(org_id=org_id, user_id=user_id, role=role)
        self.session.add(membership)
        await self.session.flush()
        return membership

    async def get_membership(self, org_id: uuid.UUID, user_id: uuid.UUID) -> Membership | None:
        """The user's membership in that organisation, or None."""
        return await self.session.scalar(
            select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
        )

    async def members_with_role(self, org_id: uuid.UUID, role: Role) -> list[User]:
        """Active users holding ``role`` in the organisation, oldest membership first."""
        stmt = (
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.org_id == org_id, Membership.role == role, User.is_active.is_(True))
            .order_by(Membership.created_at, Membership.id)
        )
        return list((await self.session.scalars(stmt)).all())

    async def first_membership(self, user_id: uuid.UUID) -> Membership | None:
        """The organisation a user signs in to by default (the oldest membership)."""
        return await self.session.scalar(
            select(Membership).where(Membership.user_id == user_id).order_by(Membership.created_at).limit(1)
        )


class RefreshTokenRepository:
    """Rotating refresh tokens (hashes only)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: RefreshToken) -> RefreshToken:
        """Stage a new token."""
        self.session.add(token)
        await self.session.flush()
        return token

    async def get_by_hash_for_update(self, token_hash: str) -> RefreshToken | None:
        """Lock the row so two concurrent refreshes of the same token cannot both succeed."""
        return await self.session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        )

    async def revoke_family(self, family_id: uuid.UUID) -> None:
        """Revoke every token of a login (logout, or reuse of a spent token)."""
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )

    async def revoke_all_for_user(self, user_id: uuid.UUID, at: datetime | None = None) -> None:
        """Revoke every session of a user (password change)."""
        await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=at or utcnow())
        )


class PasswordResetTokenRepository:
    """Single-use password-reset tokens (hashes only)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: PasswordResetToken) -> PasswordResetToken:
        """Stage a new token."""
        self.session.add(token)
        await self.session.flush()
        return token

    async def get_by_hash_for_update(self, token_hash: str) -> PasswordResetToken | None:
        """Lock the row so two concurrent confirmations of one token cannot both succeed."""
        return await self.session.scalar(
            select(PasswordResetToken).where(PasswordResetToken.token_hash == token_hash).with_for_update()
        )

    async def spend_all_for_user(self, user_id: uuid.UUID, at: datetime | None = None) -> None:
        """Mark every unused token of the user as used (a newer request or a completed reset)."""
        await self.session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_at.is_(None))
            .values(used_at=at or utcnow())
        )
