"""The Temporal Schedule that ticks ``TriggerClockWorkflow`` every hour for one connected organisation.

It lives and dies with the CRM sync schedule (``salesflow/crm_schedule.py``): created where that one
is created (on connect, and by every sync's reconcile, which also heals a failed create), deleted where
it is deleted; a tick that finds the org disconnected deletes it too.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

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
from workflows.ids import TASK_QUEUE, trigger_clock_id
from workflows.trigger_clock_models import TriggerClockInput

TICK = timedelta(hours=1)


def trigger_clock_schedule_id(org_id: uuid.UUID) -> str:
    """One clock schedule per organisation."""
    return f"trigger-clock-schedule/{org_id}"


def tick_offset(org_id: uuid.UUID) -> timedelta:
    """Where in the hour the org's tick falls: spread by org id so all orgs do not tick at :00 at once."""
    return timedelta(seconds=org_id.int % int(TICK.total_seconds()))


def _schedule(settings: Settings, org_id: uuid.UUID) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "TriggerClockWorkflow",
            TriggerClockInput(org_id=org_id),
            # Temporal appends the scheduled time to this id, so each tick is its own findable run.
            id=trigger_clock_id(org_id),
            task_queue=TASK_QUEUE,
            typed_search_attributes=run_search_attributes(settings, org_id=org_id),
            static_summary=f"Trigger clock tick of org {org_id}",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=TICK, offset=tick_offset(org_id))]),
        policy=SchedulePolicy(
            # A tick still walking a large org must not be joined by the next one.
            overlap=ScheduleOverlapPolicy.SKIP,
            # Ticks missed in a long outage are not replayed: the next tick still finds every silence due.
            catchup_window=TICK,
        ),
    )


async def upsert_trigger_clock_schedule(client: Client, settings: Settings, org_id: uuid.UUID) -> str:
    """Create the schedule, or bring an existing one to the current spec and action."""
    return await upsert_schedule(client, trigger_clock_schedule_id(org_id), _schedule(settings, org_id))


async def delete_trigger_clock_schedule(client: Client, org_id: uuid.UUID) -> bool:
    """Delete the schedule; False if there was none."""
    return await delete_schedule(client, trigger_clock_schedule_id(org_id))
