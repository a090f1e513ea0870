"""Starting, signalling and reading the onboarding workflow of an organisation; the first agent from a brief."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.errors import NotFound
from db.models import Agent, AgentObjection, AgentRule, AgentScript, AgentStatus, RuleKind, ScriptStage
from db.repositories.agent_config import ObjectionRepository, RuleRepository, ScriptRepository
from db.repositories.agents import AgentRepository
from domain.onboarding_brief import AgentDraft, Brief, draft_agent
from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from workflows.ids import TASK_QUEUE, onboarding_id
from workflows.onboarding import OnboardingWorkflow
from workflows.onboarding_models import OnboardingInput, OnboardingProgress, OnboardingStep, StepCompleted

log = structlog.get_logger(__name__)


async def start_onboarding(client: Client, settings: Settings, org_id: uuid.UUID, org_name: str) -> str:
    """Start ``onboarding/{org}``; a repeated call finds the running one instead of failing."""
    handle: WorkflowHandle[OnboardingWorkflow, OnboardingProgress] = await client.start_workflow(
        OnboardingWorkflow.run,
        OnboardingInput(org_id=org_id),
        id=onboarding_id(org_id),
        task_queue=TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=run_search_attributes(settings, org_id=org_id),
        static_summary=f"Onboarding of {org_name}",
    )
    return handle.id


async def get_onboarding_progress(client: Client, org_id: uuid.UUID) -> OnboardingProgress:
    """Query the run (works on completed runs too); 404 if the organisation never started one."""
    handle = client.get_workflow_handle_for(OnboardingWorkflow.run, onboarding_id(org_id))
    try:
        return await handle.query(OnboardingWorkflow.progress)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound("No onboarding run for this organization.") from exc
        raise


async def signal_onboarding_step(client: Client | None, org_id: uuid.UUID, step: OnboardingStep) -> bool:
    """Tell ``onboarding/{org}`` that ``step`` is done; True if the run took the signal.

    Call it *after* committing what the step did. No run (an organisation created before onboarding
    existed) or a finished one answers NOT_FOUND, which is fine: there is nothing left to advance.
    Any other failure is logged, not raised: the business change is already committed, and failing the
    request would invite a retry that repeats it. The run stays at the step and its reminders say so.
    """
    if client is None:
        log.warning("onboarding signal skipped: no Temporal client", org_id=str(org_id), step=step.value)
        return False
    handle = client.get_workflow_handle_for(OnboardingWorkflow.run, onboarding_id(org_id))
    try:
        await handle.signal(OnboardingWorkflow.step_completed, StepCompleted(step=step))
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            log.warning("onboarding signal failed", org_id=str(org_id), step=step.value, error=str(exc))
        return False
    return True


class OnboardingAgentService:
    """The first agent of an organisation, drafted from the onboarding brief."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.agents = AgentRepository(session, org_id)
        self.scripts = ScriptRepository(session, org_id)
        self.objections = ObjectionRepository(session, org_id)
        self.rules = RuleRepository(session, org_id)

    async def create_from_brief(self, brief: Brief) -> tuple[Agent, AgentDraft]:
        """Stage a draft agent with its scripts, objections and rules (the caller commits)."""
        draft = draft_agent(brief)
        agent = await self.agents.add(Agent(
            name=draft.name, description=draft.description, persona=draft.persona, tone=draft.tone,
            language=draft.language, status=AgentStatus.draft,
        ))
        for position, script in enumerate(draft.scripts):
            await self.scripts.add(agent.id, AgentScript(
                stage=ScriptStage(script.stage), name=script.name, messages=list(script.messages), position=position,
            ))
        for objection in draft.objections:
            await self.objections.add(agent.id, AgentObjection(
                objection=objection.objection, answer=objection.answer,
                trigger_phrases=list(objection.trigger_phrases), category=objection.category,
            ))
        for position, rule in enumerate(draft.rules):
            await self.rules.add(agent.id, AgentRule(
                kind=RuleKind(rule.kind), instruction=rule.instruction, parameters=dict(rule.parameters),
                position=position,
            ))
        return agent, draft
