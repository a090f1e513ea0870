"""/api/test-login: a development-only sign-in shortcut, mounted only when ``environment`` is development."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import EmailStr

from api.deps import SessionDep, SettingsDep
from api.errors import NotFound
from api.routers.auth import token_read
from api.schemas.auth import TokenRead
from api.services.auth import AuthService

router = APIRouter(prefix="/api", tags=["development"])


@router.get("/test-login", response_model=TokenRead)
async def get_test_login(
    session: SessionDep, settings: SettingsDep,
    email: Annotated[EmailStr | None, Query(max_length=320, description="An existing user; default: the demo user")]
    = None,
) -> TokenRead:
    """Development only: sign in as an existing user (or the seeded demo user) without a password."""
    # The router is only mounted in development; this guards a copy mounted elsewhere by mistake.
    if settings.environment != "development":
        raise NotFound("Not Found")
    return token_read(await AuthService(session, settings).test_login(str(email) if email else None))
