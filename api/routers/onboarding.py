"""/api/onboarding: progress of the organisation's onboarding workflow, and its first agent."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, TemporalDep
from api.schemas.agents import AgentRead
from api.schemas.onboarding import OnboardingAgentCreate, OnboardingAgentRead, OnboardingStatusRead
from api.services.onboarding import OnboardingAgentService, get_onboarding_progress, signal_onboarding_step
from domain.onboarding_brief import Brief
from workflows.ids import onboarding_id
from workflows.onboarding_models import OnboardingStep

router = APIRouter(prefix="/api/onboarding", tags=["onboarding"])


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


@router.post("/agent", status_code=status.HTTP_201_CREATED, response_model=OnboardingAgentRead)
async def create_onboarding_agent(
    body: OnboardingAgentCreate, principal: CurrentPrincipal, session: SessionDep, temporal: TemporalDep
) -> OnboardingAgentRead:
    """Draft the first agent (scripts, objections, rules) from a short brief; completes the agent step."""
    brief = Brief(company=body.company, product=body.product, tone=body.tone, language=body.language,
                  agent_name=body.agent_name)
    agent, draft = await OnboardingAgentService(session, principal.org_id).create_from_brief(brief)
    # The signal must not run ahead of the rows it announces.
    await session.commit()
    await signal_onboarding_step(temporal, principal.org_id, OnboardingStep.agent_created)
    return OnboardingAgentRead(
        agent=AgentRead.model_validate(agent), scripts=len(draft.scripts), objections=len(draft.objections),
        rules=len(draft.rules), onboarding_workflow_id=onboarding_id(principal.org_id),
    )
