"""Starting and reading the onboarding workflow of an organisation."""

from __future__ import annotations

import uuid

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.errors import NotFound
from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from workflows.ids import TASK_QUEUE, onboarding_id
from workflows.onboarding import OnboardingWorkflow
from workflows.onboarding_models import OnboardingInput, OnboardingProgress


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
