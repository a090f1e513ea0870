"""/api/auth: registration, login, token refresh, logout, session, password reset and tenant redirect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import EmailStr

from api.deps import CurrentPrincipal, OptionalTemporalDep, SessionDep, SettingsDep, TemporalDep
from api.errors import BadRequest, Unauthorized
from api.ratelimit import client_ip, enforce_rate_limit
from api.schemas.auth import (
    AcceptedRead,
    LoginCreate,
    PasswordResetConfirmCreate,
    PasswordResetRequestCreate,
    RefreshCreate,
    RegisterCreate,
    RegisterRead,
    SessionRead,
    TenantRedirectRead,
    TokenRead,
)
from api.security import access_token_expiry
from api.services.auth import AuthService, IssuedTokens
from api.services.email_delivery import start_email_delivery
from api.services.onboarding import start_onboarding

router = APIRouter(prefix="/api/auth", tags=["auth"])

RESET_ACCEPTED = "If an account exists for this email, a link to reset its password is on its way."
_bearer = HTTPBearer(auto_error=False)


def token_read(tokens: IssuedTokens) -> TokenRead:
    return TokenRead(
        access_token=tokens.access_token, refresh_token=tokens.refresh_token, expires_in=tokens.expires_in,
        user_id=tokens.user_id, org_id=tokens.org_id,
    )


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=RegisterRead)
async def register_account(
    body: RegisterCreate, request: Request, session: SessionDep, settings: SettingsDep, temporal: TemporalDep
) -> RegisterRead:
    """Create an organisation and its owner, sign in, and start the organisation's onboarding."""
    await enforce_rate_limit(
        request, f"register:ip:{client_ip(request)}",
        limit=settings.login_attempts_per_ip, window_seconds=settings.login_window_seconds,
    )
    org, tokens = await AuthService(session, settings).register(
        email=body.email, password=body.password, full_name=body.full_name,
        org_name=body.organization_name, time_zone=body.time_zone, locale=body.locale,
    )
    # The workflow's first activity reads the organisation, so it must be committed first.
    await session.commit()
    workflow_id = await start_onboarding(temporal, settings, org.id, org.name)
    return RegisterRead(
        **token_read(tokens).model_dump(),
        onboarding_workflow_id=workflow_id,
        onboarding_url=settings.temporal_run_url(workflow_id),
    )


@router.post("/login", response_model=TokenRead)
async def login_user(body: LoginCreate, request: Request, session: SessionDep, settings: SettingsDep) -> TokenRead:
    """Exchange email and password for a token pair; rate limited per account and per IP."""
    limits = ((f"login:ip:{client_ip(request)}", settings.login_attempts_per_ip),
              (f"login:acct:{body.email.lower()}", settings.login_attempts_per_window))
    for key, limit in limits:
        await enforce_rate_limit(request, key, limit=limit, window_seconds=settings.login_window_seconds)
    return token_read(await AuthService(session, settings).login(email=body.email, password=body.password))


@router.post("/refresh", response_model=TokenRead)
async def refresh_token(body: RefreshCreate, session: SessionDep, settings: SettingsDep) -> TokenRead:
    """Rotate a refresh token into a new pair; a reused token revokes its whole login."""
    return token_read(await AuthService(session, settings).refresh(body.refresh_token))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout_user(
    body: RefreshCreate, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> Response:
    """Revoke the caller's login that the refresh token belongs to."""
    await AuthService(session, settings).logout(body.refresh_token, user_id=principal.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/session", response_model=SessionRead)
async def get_current_session(
    principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> SessionRead:
    """The current session: user, organisation (with its app URL), current role and token expiry."""
    expires_at = access_token_expiry(credentials.credentials, settings.jwt_secret) if credentials else None
    if expires_at is None:
        raise Unauthorized("Invalid or expired token.")
    return await AuthService(session, settings).current_session(
        user_id=principal.user_id, org_id=principal.org_id, expires_at=expires_at
    )


@router.post("/reset-password/request", status_code=status.HTTP_202_ACCEPTED, response_model=AcceptedRead)
async def request_password_reset(
    body: PasswordResetRequestCreate, request: Request, session: SessionDep, settings: SettingsDep,
    temporal: OptionalTemporalDep, background: BackgroundTasks,
) -> AcceptedRead:
    """Email a single-use reset link; the answer is the same whether or not the email has an account.

    The token and its message are written to the outbox in this transaction; the delivery workflow
    starts after the response is sent, so neither its latency nor a Temporal outage tells a caller
    whether the address is registered (the row stays queued and is logged if the start fails).
    """
    limits = ((f"reset:ip:{client_ip(request)}", settings.password_reset_per_ip),
              (f"reset:acct:{body.email.lower()}", settings.password_reset_per_email))
    for key, limit in limits:
        await enforce_rate_limit(request, key, limit=limit, window_seconds=settings.password_reset_window_seconds)
    queued = await AuthService(session, settings).request_password_reset(body.email)
    if queued is not None:
        await session.commit()
        org_id, outbox_id = queued
        background.add_task(start_email_delivery, temporal, settings, org_id, outbox_id, "Password reset email")
    return AcceptedRead(detail=RESET_ACCEPTED)


@router.post("/reset-password/confirm", status_code=status.HTTP_204_NO_CONTENT)
async def confirm_password_reset(
    body: PasswordResetConfirmCreate, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Set a new password with a reset token; the token is spent and every session of the user revoked."""
    await enforce_rate_limit(
        request, f"reset-confirm:ip:{client_ip(request)}",
        limit=settings.password_reset_per_ip, window_seconds=settings.password_reset_window_seconds,
    )
    await AuthService(session, settings).confirm_password_reset(body.token, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/get-tenant-redirect", response_model=TenantRedirectRead)
async def get_tenant_redirect(
    request: Request, session: SessionDep, settings: SettingsDep,
    email: Annotated[EmailStr | None, Query(max_length=320)] = None,
    slug: Annotated[str | None, Query(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9-]+$")] = None,
) -> TenantRedirectRead:
    """Where to sign in: an organisation slug resolves to its app URL; any email gets the generic page.

    Unknown slugs and every email answer 200 with the generic sign-in URL, so the response never
    says whether an email has an account (see ``AuthService.tenant_redirect``).
    """
    if (email is None) == (slug is None):
        raise BadRequest("Give exactly one of email or slug.",
                         errors=[{"field": "query", "message": "exactly one of email or slug is required"}])
    await enforce_rate_limit(
        request, f"tenant-redirect:ip:{client_ip(request)}",
        limit=settings.tenant_redirect_per_ip, window_seconds=settings.tenant_redirect_window_seconds,
    )
    url = await AuthService(session, settings).tenant_redirect(slug=slug, email=email)
    return TenantRedirectRead(redirect_url=url)
