"""/api/auth: registration, login, token refresh and logout."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, TemporalDep
from api.ratelimit import client_ip, enforce_rate_limit
from api.schemas.auth import LoginCreate, RefreshCreate, RegisterCreate, RegisterRead, TokenRead
from api.services.auth import AuthService, IssuedTokens
from api.services.onboarding import start_onboarding

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _token_read(tokens: IssuedTokens) -> TokenRead:
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
        **_token_read(tokens).model_dump(),
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
    return _token_read(await AuthService(session, settings).login(email=body.email, password=body.password))


@router.post("/refresh", response_model=TokenRead)
async def refresh_token(body: RefreshCreate, session: SessionDep, settings: SettingsDep) -> TokenRead:
    """Rotate a refresh token into a new pair; a reused token revokes its whole login."""
    return _token_read(await AuthService(session, settings).refresh(body.refresh_token))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout_user(
    body: RefreshCreate, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> Response:
    """Revoke the caller's login that the refresh token belongs to."""
    await AuthService(session, settings).logout(body.refresh_token, user_id=principal.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
