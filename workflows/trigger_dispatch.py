"""What ``CrmEventWorkflow._dispatch`` calls to run triggers for an event (workflow code, deterministic)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.triggers import TriggerActivities
    from workflows.crm_models import CrmEventInput, LeadSnapshot
    from workflows.trigger_models import TriggerRunInput, trigger_events_for

TRIGGER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5),
                            maximum_attempts=20)


async def dispatch_triggers(
    event: CrmEventInput, lead: LeadSnapshot | None, *, signal_enrollments: bool = True
) -> str:
    """Signal the lead's enrolments (unless told otherwise) and fire the org's matching triggers; returns the
    outcome to record."""
    if lead is not None and not lead.found:
        return f"lead {event.lead_kommo_id} no longer exists in Kommo; no trigger evaluated"
    outcomes: list[str] = []
    for event_key, trigger_event in trigger_events_for(event, lead):
        result = await workflow.execute_activity_method(
            TriggerActivities.run_triggers,
            TriggerRunInput(org_id=event.org_id, event_key=event_key, event=trigger_event,
                            signal_enrollments=signal_enrollments),
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=TRIGGER_RETRY,
            summary=f"triggers for {trigger_event.type.value}",
        )
        outcomes.append(result.summary())
    return "; ".join(outcomes) or "no trigger applies to this event"
