"""BillingEventWorkflow: apply one Stripe event to the organisation it concerns, exactly once per event id."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from workflows.billing_models import BillingEventInput, BillingEventResult

# Stripe may be briefly unreachable; the event is stored, so keep trying for about an hour before failing
# visibly (the inbox row stays unprocessed and shows in /api/metrics).
STRIPE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5),
                           maximum_attempts=20)


@workflow.defn
class BillingEventWorkflow:
    """``billing-event/{event id}``: re-read the subscription from Stripe, update plan and history, notify."""

    @workflow.run
    async def run(self, data: BillingEventInput) -> BillingEventResult:
        """One activity: it reads Stripe, writes our rows and marks the inbox row in one transaction."""
        return await workflow.execute_activity_method(
            BillingActivities.apply_event, data, start_to_close_timeout=timedelta(minutes=2),
            retry_policy=STRIPE_RETRY, summary=data.type,
        )
