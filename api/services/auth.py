"""Registration, login, refresh-token rotation, password reset, the current session and tenant redirects."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, Conflict, NotFound, Unauthorized
from api.schemas.auth import SessionOrganizationRead, SessionRead, SessionUserRead
from api.security import (
    AccessClaims,
    hash_password,
    issue_access_token,
    new_opaque_token,
    token_digest,
    verify_password,
)
from db.models import Organization, PasswordResetToken, RefreshToken, Role, User
from db.repositories.accounts import (
    OrganizationRepository,
    PasswordResetTokenRepository,
    RefreshTokenRepository,
    UserRepository,
)
from db.repositories.content import EmailTemplateRepository
from db.repositories.email import EmailOutboxRepository
from domain.email_defaults import PASSWORD_RESET, compose
from domain.templates import EmailTemplateSource
from salesflow.settings import Settings

_RESET_INVALID = "The reset link is invalid or has expired."


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
        self.resets = PasswordResetTokenRepository(session)

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

    async def request_password_reset(self, email: str) -> tuple[uuid.UUID, uuid.UUID] | None:
        """Stage a reset token and its email for an active account; None (and no trace) otherwise.

        Returns (org id, outbox id) of the queued message for the caller to hand to delivery after
        committing. A new request spends the user's earlier links: only the newest one works.
        """
        user = await self.users.get_by_email(email)
        if user is None or not user.is_active:
            return None
        membership = await self.users.first_membership(user.id)
        org = await self.orgs.get(membership.org_id) if membership is not None else None
        if org is None:
            return None
        now = datetime.now(UTC)
        await self.resets.spend_all_for_user(user.id, now)
        raw = new_opaque_token()
        ttl = self.settings.password_reset_ttl_seconds
        token = await self.resets.add(PasswordResetToken(
            user_id=user.id, token_hash=token_digest(raw), expires_at=now + timedelta(seconds=ttl),
        ))
        values = {
            "user_name": user.full_name, "org_name": org.name, "expires_minutes": max(1, ttl // 60),
            "reset_url": f"{self.settings.org_app_url(org.slug)}{self.settings.password_reset_path}?token={raw}",
        }
        custom = await EmailTemplateRepository(self.session, org.id).get_by_key(PASSWORD_RESET)
        source = None if custom is None else EmailTemplateSource(
            subject=custom.subject, body_html=custom.body_html, body_text=custom.body_text,
            variables=tuple(custom.variables),
        )
        rendered, _ = compose(PASSWORD_RESET, values, source)
        outbox_id = await EmailOutboxRepository(self.session, org.id).enqueue(
            to_address=user.email, subject=rendered.subject, body_text=rendered.body_text,
            body_html=rendered.body_html, template_key=PASSWORD_RESET,
            idempotency_key=f"password-reset/{token.id}", sensitive=True,
        )
        return org.id, outbox_id

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        """Set the new password, spend the token, and revoke every refresh token of the user.

        A wrong, spent or expired token is the same 400, so the answer tells an attacker nothing.
        """
        now = datetime.now(UTC)
        row = await self.resets.get_by_hash_for_update(token_digest(token))
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise BadRequest(_RESET_INVALID, errors=[{"field": "body.token", "message": _RESET_INVALID}])
        user = await self.users.get(row.user_id)
        if user is None or not user.is_active:
            raise BadRequest(_RESET_INVALID, errors=[{"field": "body.token", "message": _RESET_INVALID}])
        user.password_hash = hash_password(new_password)
        user.updated_at = now
        await self.resets.spend_all_for_user(user.id, now)
        await self.tokens.revoke_all_for_user(user.id, now)

    async def current_session(
        self, *, user_id: uuid.UUID, org_id: uuid.UUID, expires_at: datetime
    ) -> SessionRead:
        """The session behind an access token, with the role as it is now (not as the token says)."""
        user = await self.users.get(user_id)
        membership = await self.users.get_membership(org_id, user_id)
        org = await self.orgs.get(org_id)
        if user is None or not user.is_active or membership is None or org is None:
            raise Unauthorized("This session is no longer valid.")
        return SessionRead(
            user=SessionUserRead(id=user.id, email=user.email, full_name=user.full_name),
            organization=SessionOrganizationRead(
                id=org.id, name=org.name, slug=org.slug, app_url=self.settings.org_app_url(org.slug)
            ),
            role=membership.role,
            expires_at=expires_at,
        )

    async def tenant_redirect(self, *, slug: str | None, email: str | None) -> str:
        """Where a sign-in should go.

        A slug names an organisation, not a person: a known one resolves to its app URL, anything
        else to the generic sign-in page. An email is never looked up here: answering differently
        for a registered address would tell anyone which emails have accounts. Every email gets the
        generic sign-in page (with the address as a login hint); after signing in, the session
        (``GET /api/auth/session``) carries the organisation's app URL.
        """
        if slug is not None:
            org = await self.orgs.get_by_slug(slug.lower())
            if org is not None:
                return self.settings.org_app_url(org.slug)
        login = self.settings.login_url()
        if email is not None:
            return f"{login}{'&' if '?' in login else '?'}{urlencode({'login_hint': email.lower()})}"
        return login

    async def test_login(self, email: str | None) -> IssuedTokens:
        """Development only: a session for an existing user, or for the demo user (created on first use)."""
        address = (email or self.settings.demo_user_email).lower()
        user = await self.users.get_by_email(address)
        if user is None and email is None:
            user = await self._seed_demo_user(address)
        if user is None or not user.is_active:
            raise NotFound("No such user.")
        membership = await self.users.first_membership(user.id)
        if membership is None:
            raise NotFound("No such user.")
        return await self._issue(user.id, membership.org_id, membership.role, family_id=uuid.uuid4())

    async def _seed_demo_user(self, email: str) -> User:
        slug = "demo"
        while await self.orgs.slug_taken(slug):
            slug = f"demo-{secrets.token_hex(3)}"
        org = await self.orgs.add(Organization(name="Demo Company", slug=slug))
        # Nobody knows this password: the demo user signs in through test-login or a password reset.
        user = await self.users.add(User(email=email, password_hash=hash_password(new_opaque_token()),
                                         full_name="Demo Owner"))
        await self.users.add_membership(org.id, user.id, Role.owner)
        return user

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
