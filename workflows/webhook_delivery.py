"""WebhookDeliveryWorkflow: deliver one queued event to one endpoint, retrying on a day-long backoff."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import DeliveryInput, WebhookActivities

# Like the big webhook senders: quick retries first, then hourly, for about a day in all.
DELIVERY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=30), backoff_coefficient=2.0,
                             maximum_interval=timedelta(hours=1), maximum_attempts=30)


class DeliveryOutcome(BaseModel):
    """How the delivery ended."""

    status: str


@workflow.defn
class WebhookDeliveryWorkflow:
    """``webhook-delivery/{delivery id}``: POST the signed event until the endpoint takes it or retries run out."""

    @workflow.run
    async def run(self, data: DeliveryInput) -> DeliveryOutcome:
        """Deliver; once the retries are spent (or the endpoint refused for good), mark the delivery failed."""
        try:
            status = await workflow.execute_activity_method(
                WebhookActivities.deliver, data, start_to_close_timeout=timedelta(seconds=30),
                retry_policy=DELIVERY_RETRY)
        except ActivityError:
            await workflow.execute_activity_method(WebhookActivities.mark_failed, data,
                                                   start_to_close_timeout=timedelta(seconds=30))
            return DeliveryOutcome(status="failed")
        return DeliveryOutcome(status=status)
