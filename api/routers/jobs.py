"""/api/jobs: start background work on demand and follow it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from api.deps import AdminPrincipal, CurrentPrincipal, SessionDep, SettingsDep, TemporalDep
from api.schemas.jobs import JobCreate, JobRead
from api.services.jobs import JobService

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.post("", response_model=JobRead, status_code=status.HTTP_202_ACCEPTED)
async def create_job(
    body: Annotated[JobCreate, Body()], principal: AdminPrincipal, session: SessionDep, temporal: TemporalDep,
    settings: SettingsDep,
) -> JobRead:
    """Owners and admins: start a CRM sync, a full resync, or a trigger clock tick now."""
    return await JobService(session, temporal, settings, principal.org_id).start(body.type)


@router.get("/status", response_model=JobRead)
async def get_job_status(
    principal: CurrentPrincipal, session: SessionDep, temporal: TemporalDep, settings: SettingsDep,
    job_id: Annotated[str, Query(min_length=1, max_length=300, description="job_id from POST /api/jobs")],
) -> JobRead:
    """Where a job of the organisation stands (running, completed, failed...), with its Temporal UI link."""
    return await JobService(session, temporal, settings, principal.org_id).status(job_id)
