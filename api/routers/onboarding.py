"""/api/onboarding: progress of the organisation's onboarding workflow."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentPrincipal, SettingsDep, TemporalDep
from api.schemas.common import ReadModel
from api.services.onboarding import get_onboarding_progress
from workflows.ids import onboarding_id
from workflows.onboarding_models import OnboardingProgress

router = APIRouter(prefix="/api/onboarding", tags=["onboarding"])


class OnboardingStatusRead(ReadModel):
    """Progress plus where to see the run in the Temporal UI."""

    workflow_id: str
    temporal_url: str
    progress: OnboardingProgress


@router.get("/status", response_model=OnboardingStatusRead)
async def get_onboarding_status(
    principal: CurrentPrincipal, temporal: TemporalDep, settings: SettingsDep
) -> OnboardingStatusRead:
    """Which onboarding steps are done, read from the workflow by query."""
    progress = await get_onboarding_progress(temporal, principal.org_id)
    workflow_id = onboarding_id(principal.org_id)
    return OnboardingStatusRead(
        workflow_id=workflow_id, temporal_url=settings.temporal_run_url(workflow_id), progress=progress
    )
