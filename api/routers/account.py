"""/api/account (the caller) and /api/organization/settings (their organisation's defaults)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AdminPrincipal, CurrentPrincipal, SessionDep
from api.schemas.account import AccountRead, AccountUpdate, OrganizationSettingsRead, OrganizationSettingsUpdate
from api.services.account import AccountService, OrganizationSettingsService

router = APIRouter(tags=["account"])


@router.get("/api/account", response_model=AccountRead)
async def get_account(principal: CurrentPrincipal, session: SessionDep) -> AccountRead:
    """The caller: id, email, name, role and organisation."""
    return await AccountService(session, principal).get()


@router.patch("/api/account", response_model=AccountRead)
async def update_account(body: AccountUpdate, principal: CurrentPrincipal, session: SessionDep) -> AccountRead:
    """Change your name, or your password (with the current one); email changes are not accepted here."""
    return await AccountService(session, principal).update(body.model_dump(exclude_unset=True))


@router.get("/api/organization/settings", response_model=OrganizationSettingsRead)
async def get_organization_settings(principal: CurrentPrincipal, session: SessionDep) -> OrganizationSettingsRead:
    """The organisation's name, time zone, locale, default business hours and holidays (any member)."""
    return await OrganizationSettingsService(session, principal.org_id).get()


@router.patch("/api/organization/settings", response_model=OrganizationSettingsRead)
async def update_organization_settings(
    body: OrganizationSettingsUpdate, principal: AdminPrincipal, session: SessionDep
) -> OrganizationSettingsRead:
    """Change organisation settings (owners and admins only; members get 403)."""
    changes = body.model_dump(exclude_unset=True)
    return await OrganizationSettingsService(session, principal.org_id).update(changes)
