"""CrmSyncWorkflow: pull pipelines, statuses, users, custom fields and changed leads into our tables."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.kommo import KommoActivities
    from workflows.crm_models import (
        CrmSyncInput,
        CrmSyncResult,
        FinishSyncInput,
        LeadsBatchInput,
        OrgInput,
    )
    from workflows.ids import onboarding_id
    from workflows.onboarding_models import OnboardingStep, StepCompleted

# Kommo failures are classified by the activity (429 carries Retry-After as next_retry_delay);
# this bounds how long one sync keeps trying before it fails visibly.
KOMMO_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=10,
)
KOMMO_CALL = timedelta(minutes=2)
LEAD_PAGES_PER_ACTIVITY = 20


@workflow.defn
class CrmSyncWorkflow:
    """``crm-sync/{org}``: one idempotent pass over the org's Kommo account (on demand or scheduled)."""

    @workflow.run
    async def run(self, data: CrmSyncInput) -> CrmSyncResult:
        """Reconcile the schedule, sync reference data, then leads changed since the checkpoint."""
        org = OrgInput(org_id=data.org_id)
        schedule = await self._reconcile_schedule(org)
        plan = await workflow.execute_activity_method(
            KommoActivities.plan_sync, org, start_to_close_timeout=timedelta(seconds=30), retry_policy=KOMMO_RETRY,
        )
        since = None if data.full else plan.updated_since
        pipelines, users, fields = await asyncio.gather(
            workflow.execute_activity_method(
                KommoActivities.sync_pipelines, org, start_to_close_timeout=KOMMO_CALL, retry_policy=KOMMO_RETRY
            ),
            workflow.execute_activity_method(
                KommoActivities.sync_users, org, start_to_close_timeout=KOMMO_CALL, retry_policy=KOMMO_RETRY
            ),
            workflow.execute_activity_method(
                KommoActivities.sync_custom_fields, org, start_to_close_timeout=KOMMO_CALL, retry_policy=KOMMO_RETRY
            ),
        )
        leads = 0
        page: int | None = 1
        while page is not None:
            batch = await workflow.execute_activity_method(
                KommoActivities.sync_leads,
                LeadsBatchInput(org_id=data.org_id, updated_since=since, start_page=page,
                                max_pages=LEAD_PAGES_PER_ACTIVITY),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=KOMMO_RETRY,
            )
            leads += batch.upserted
            page = batch.next_page
        await workflow.execute_activity_method(
            KommoActivities.finish_sync, FinishSyncInput(org_id=data.org_id, started_at=plan.started_at),
            start_to_close_timeout=timedelta(seconds=30),
        )
        await self._tell_onboarding(data)
        return CrmSyncResult(
            org_id=data.org_id, pipelines=pipelines.pipelines, statuses=pipelines.statuses, users=users,
            custom_fields=fields, leads=leads, incremental_since=since, schedule=schedule,
        )

    async def _reconcile_schedule(self, org: OrgInput) -> str:
        # The schedule is housekeeping: a Temporal hiccup there must not cost the user their sync.
        try:
            return await workflow.execute_activity_method(
                KommoActivities.reconcile_sync_schedule, org, start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except ActivityError as exc:
            workflow.logger.warning("sync schedule not reconciled: %s", exc.cause or exc)
            return "error"

    async def _tell_onboarding(self, data: CrmSyncInput) -> None:
        # Tenants created outside sign-up have no onboarding run; that is fine.
        handle = workflow.get_external_workflow_handle(onboarding_id(data.org_id))
        try:
            await handle.signal("step_completed", StepCompleted(step=OnboardingStep.pipelines_synced))
        except Exception as exc:
            workflow.logger.info("onboarding not signalled: %s", exc)
