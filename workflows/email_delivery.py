"""EmailDeliveryWorkflow: delivers one outbox row, retrying the SMTP send, and records the outcome."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from workflows.email_delivery_models import DeliverEmail, DeliveryResult, DeliveryStatus, MarkEmailFailed

# Transient SMTP failures back off from 10 s to 30 min; after ~6 h of attempts the row is marked failed.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=10), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=30),
    maximum_attempts=16,
)


@workflow.defn
class EmailDeliveryWorkflow:
    """One run per outbox row (``email/{outbox}``); idempotent because delivery is keyed by the row."""

    @workflow.run
    async def run(self, data: DeliverEmail) -> DeliveryResult:
        """Deliver the row; if every retry fails, mark it failed instead of failing the run."""
        try:
            return await workflow.execute_activity_method(
                EmailActivities.deliver, data, start_to_close_timeout=timedelta(seconds=90),
                retry_policy=DELIVERY_RETRY, summary="SMTP delivery",
            )
        except ActivityError as exc:
            error = str(exc.cause or exc)
            await workflow.execute_activity_method(
                EmailActivities.mark_failed,
                MarkEmailFailed(org_id=data.org_id, outbox_id=data.outbox_id, error=error),
                start_to_close_timeout=timedelta(seconds=30),
            )
            return DeliveryResult(outbox_id=data.outbox_id, status=DeliveryStatus.failed)
