"""FastAPI dependencies: settings, DB session (committed at the request boundary), Temporal, caller."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.errors import Forbidden, ServiceUnavailable, Unauthorized
from api.security import decode_access_token
from db.models import Role
from salesflow.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    """Settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; committed when the handler returns, rolled back if it raises."""
    async with request.app.state.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def get_temporal(request: Request) -> Client:
    """The shared Temporal client (503 if the app could not connect)."""
    client: Client | None = request.app.state.temporal
    if client is None:
        raise ServiceUnavailable("The workflow engine is not reachable.")
    return client


def get_optional_temporal(request: Request) -> Client | None:
    """The Temporal client if connected; for best-effort signals that must not fail the request."""
    client: Client | None = request.app.state.temporal
    return client


_bearer = HTTPBearer(auto_error=False, description="Access token from /api/auth/login or /api/auth/register")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: who, in which organisation, with which role."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    role: Role

    def require(self, *roles: Role) -> None:
        """403 unless the caller holds one of ``roles``."""
        if self.role not in roles:
            raise Forbidden("Your role does not allow this action.")


def get_principal(
    settings: Annotated[Settings, Depends(get_settings_dep)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Resolve the bearer token; 401 for missing, malformed or expired tokens."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Missing bearer token.")
    claims = decode_access_token(credentials.credentials, settings.jwt_secret)
    if claims is None:
        raise Unauthorized("Invalid or expired token.")
    try:
        role = Role(claims.role)
    except ValueError as exc:
        raise Unauthorized("Invalid token.") from exc
    return Principal(user_id=claims.user_id, org_id=claims.org_id, role=role)


def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """Callers who may change organisation-wide settings (owner or admin)."""
    principal.require(Role.owner, Role.admin)
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
TemporalDep = Annotated[Client, Depends(get_temporal)]
OptionalTemporalDep = Annotated[Client | None, Depends(get_optional_temporal)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
AdminPrincipal = Annotated[Principal, Depends(get_admin)]
