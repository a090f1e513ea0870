"""TriggerClockWorkflow: one tick of an organisation's time-based triggers (``schedule``, ``no_reply_for_hours``).

A Temporal Schedule (``salesflow/trigger_schedule.py``) starts one run an hour. The run fixes the
tick's instant once, so every page and every retry derives the same event keys from it, then walks
the org's leads a page per activity. Per tick at most ``EVENTS_PER_TICK`` (lead, event) pairs are run
through the triggers; what is left over is still due at the next tick, whose walk skips what already
fired. History stays small: a couple of events per page, continue-as-new every ``PAGES_PER_RUN`` pages.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.trigger_clock import TriggerClockActivities
    from workflows.trigger_clock_models import (
        PAGE_ATTEMPTS,
        ClockPlanInput,
        FireDueInput,
        TriggerClockInput,
        TriggerClockResult,
    )

LEADS_PER_PAGE = 500
EVENTS_PER_TICK = 5_000
PAGES_PER_RUN = 100
CLOCK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1),
                          maximum_attempts=PAGE_ATTEMPTS)


@workflow.defn
class TriggerClockWorkflow:
    """``trigger-clock/{org}`` (plus the tick's time when scheduled): fire the time-based events due now."""

    @workflow.run
    async def run(self, data: TriggerClockInput) -> TriggerClockResult:
        """Check the org has work, then fire what is due page by page until the last lead or the budget."""
        at = data.at or workflow.now()
        evaluated, fired, failed = data.evaluated, data.fired, data.failed

        def result(outcome: str) -> TriggerClockResult:
            return TriggerClockResult(at=at, evaluated=evaluated, fired=fired, failed=failed, outcome=outcome)

        if data.after_lead_id is None:
            plan = await workflow.execute_activity_method(
                TriggerClockActivities.plan, ClockPlanInput(org_id=data.org_id),
                start_to_close_timeout=timedelta(seconds=30), retry_policy=CLOCK_RETRY,
            )
            if not plan.active:
                return result(plan.reason)
        after = data.after_lead_id
        for _ in range(PAGES_PER_RUN):
            page = await workflow.execute_activity_method(
                TriggerClockActivities.fire_due,
                FireDueInput(org_id=data.org_id, at=at, after_lead_id=after, limit=LEADS_PER_PAGE,
                             budget=EVENTS_PER_TICK - evaluated),
                start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(minutes=2),
                retry_policy=CLOCK_RETRY, summary=f"due events after lead {after}",
            )
            evaluated, fired, failed = evaluated + page.evaluated, fired + page.fired, failed + page.failed
            if page.next_after is None:
                return result("every lead walked")
            if evaluated >= EVENTS_PER_TICK:
                return result(f"stopped at {EVENTS_PER_TICK} events; the next tick carries on")
            after = page.next_after
        workflow.continue_as_new(TriggerClockInput(org_id=data.org_id, at=at, after_lead_id=after,
                                                   evaluated=evaluated, fired=fired, failed=failed))
