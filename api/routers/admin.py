"""/api/admin: platform-operator endpoints (not tenant administration)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentPrincipal, SessionDep
from api.schemas.admin import AdminStatsRead
from api.services.admin import AdminService

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/stats", response_model=AdminStatsRead)
async def get_admin_stats(principal: CurrentPrincipal, session: SessionDep) -> AdminStatsRead:
    """Platform totals and per-plan counts; platform administrators only (403 for everyone else)."""
    return await AdminService(session).stats(principal.user_id)
