"""Registration, login and refresh-token rotation."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import Conflict, Unauthorized
from api.security import (
    AccessClaims,
    hash_password,
    issue_access_token,
    new_opaque_token,
    token_digest,
    verify_password,
)
from db.models import Organization, RefreshToken, Role, User
from db.repositories.accounts import OrganizationRepository, RefreshTokenRepository, UserRepository
from salesflow.settings import Settings


@dataclass(frozen=True)
class IssuedTokens:
    """A fresh access token and refresh token for one user in one organisation."""

    access_token: str
    refresh_token: str
    expires_in: int
    user_id: uuid.UUID
    org_id: uuid.UUID


def slugify(name: str) -> str:
    """URL-safe slug of an organisation name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or "org"


class AuthService:
    """Accounts and sessions; the caller's session is committed at the request boundary."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.users = UserRepository(session)
        self.orgs = OrganizationRepository(session)
        self.tokens = RefreshTokenRepository(session)

    async def register(
        self, *, email: str, password: str, full_name: str, org_name: str, time_zone: str, locale: str
    ) -> tuple[Organization, IssuedTokens]:
        """Create organisation + owner and sign them in; 409 if the email is taken."""
        email = email.lower()
        if await self.users.get_by_email(email) is not None:
            raise Conflict("An account with this email already exists.")
        slug = slugify(org_name)
        while await self.orgs.slug_taken(slug):
            slug = f"{slugify(org_name)[:52]}-{secrets.token_hex(3)}"
        org = await self.orgs.add(Organization(name=org_name, slug=slug, time_zone=time_zone, locale=locale))
        user = await self.users.add(User(email=email, password_hash=hash_password(password), full_name=full_name))
        await self.users.add_membership(org.id, user.id, Role.owner)
        return org, await self._issue(user.id, org.id, Role.owner, family_id=uuid.uuid4())

    async def login(self, *, email: str, password: str) -> IssuedTokens:
        """Check the password; the same 401 for an unknown email and a wrong password."""
        user = await self.users.get_by_email(email)
        ok = verify_password(user.password_hash if user else None, password)
        if user is None or not ok or not user.is_active:
            raise Unauthorized("Invalid email or password.")
        membership = await self.users.first_membership(user.id)
        if membership is None:
            raise Unauthorized("Invalid email or password.")
        return await self._issue(user.id, membership.org_id, membership.role, family_id=uuid.uuid4())

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Rotate: the presented token is spent and a new pair issued.

        Presenting a spent token again means it leaked (or a client raced itself): the whole
        family is revoked, which signs out every device of that login.
        """
        now = datetime.now(UTC)
        token = await self.tokens.get_by_hash_for_update(token_digest(refresh_token))
        if token is None or token.revoked_at is not None or token.expires_at <= now:
            raise Unauthorized("Invalid refresh token.")
        if token.used_at is not None:
            await self.tokens.revoke_family(token.family_id)
            await self.session.commit()
            raise Unauthorized("Refresh token reuse detected; all sessions of this login were revoked.")
        membership = await self.users.get_membership(token.org_id, token.user_id)
        user = await self.users.get(token.user_id)
        if membership is None or user is None or not user.is_active:
            raise Unauthorized("Invalid refresh token.")
        token.used_at = now
        return await self._issue(token.user_id, token.org_id, membership.role, family_id=token.family_id)

    async def logout(self, refresh_token: str, *, user_id: uuid.UUID) -> None:
        """Revoke the caller's login; unknown or foreign tokens are ignored (logout is idempotent)."""
        token = await self.tokens.get_by_hash_for_update(token_digest(refresh_token))
        if token is not None and token.user_id == user_id:
            await self.tokens.revoke_family(token.family_id)

    async def _issue(self, user_id: uuid.UUID, org_id: uuid.UUID, role: Role, *, family_id: uuid.UUID) -> IssuedTokens:
        raw = new_opaque_token()
        await self.tokens.add(
            RefreshToken(
                org_id=org_id, user_id=user_id, family_id=family_id, token_hash=token_digest(raw),
                expires_at=datetime.now(UTC) + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
            )
        )
        access = issue_access_token(
            AccessClaims(user_id=user_id, org_id=org_id, role=role.value),
            self.settings.jwt_secret,
            self.settings.access_token_ttl_seconds,
        )
        return IssuedTokens(access, raw, self.settings.access_token_ttl_seconds, user_id, org_id)
