"""The Temporal Schedule that runs ``CrmSyncWorkflow`` periodically for one connected organisation.

Shared by the API (created when a connection becomes connected, deleted on disconnect) and by the
sync workflow's reconcile activity (which re-creates a missing schedule, so a failed create heals).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from salesflow.schedules import delete_schedule, upsert_schedule
from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from workflows.crm_models import CrmSyncInput
from workflows.ids import TASK_QUEUE, crm_sync_id

log = structlog.get_logger(__name__)


def crm_sync_schedule_id(org_id: uuid.UUID) -> str:
    """One schedule per organisation."""
    return f"crm-sync-schedule/{org_id}"


def _schedule(settings: Settings, org_id: uuid.UUID) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "CrmSyncWorkflow",
            CrmSyncInput(org_id=org_id),
            # Temporal appends the scheduled time to this id, so runs stay distinct and findable.
            id=crm_sync_id(org_id),
            task_queue=TASK_QUEUE,
            typed_search_attributes=run_search_attributes(settings, org_id=org_id),
            static_summary=f"Scheduled CRM sync of org {org_id}",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.crm_sync_interval_seconds))]),
        # A sync that outlasts the interval must not be joined by a second one.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def upsert_crm_sync_schedule(client: Client, settings: Settings, org_id: uuid.UUID) -> str:
    """Create the schedule, or bring an existing one to the current interval and action."""
    return await upsert_schedule(client, crm_sync_schedule_id(org_id), _schedule(settings, org_id))


async def delete_crm_sync_schedule(client: Client, org_id: uuid.UUID) -> bool:
    """Delete the schedule; False if there was none."""
    return await delete_schedule(client, crm_sync_schedule_id(org_id))
