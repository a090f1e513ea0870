"""BulkEnrollmentWorkflow: start (or cancel) many enrolment workflows in batches, off the request path.

``POST .../enrollments`` with 10,000 leads writes 10,000 pending rows in one transaction and starts
this one workflow; it starts the enrolment workflows 100 at a time through an activity (a few history
events per batch, not per lead) and continues as new before its own history grows large.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.enrollments import EnrollmentActivities
    from workflows.sequence_models import BatchInput, BulkEnrollmentInput, BulkEnrollmentResult


@workflow.defn
class BulkEnrollmentWorkflow:
    """``bulk-enrollment/{org}/{key}``: walk the rows by id, one activity per batch."""

    def __init__(self) -> None:
        self._processed = 0

    @workflow.run
    async def run(self, data: BulkEnrollmentInput) -> BulkEnrollmentResult:
        """Process batches until one comes back short, continuing as new every ``batches_per_run``."""
        self._processed = data.processed
        after = data.after_id
        for _ in range(data.batches_per_run):
            result = await workflow.execute_activity_method(
                EnrollmentActivities.run_batch,
                BatchInput(org_id=data.org_id, operation=data.operation, request_id=data.request_id,
                           sequence_id=data.sequence_id, cancel_reason=data.cancel_reason, after_id=after,
                           limit=data.batch_size),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
                summary=f"{data.operation.value} batch after {after}",
            )
            self._processed += result.processed
            if result.last_id is None:
                return BulkEnrollmentResult(processed=self._processed)
            after = result.last_id
        workflow.continue_as_new(data.model_copy(update={"after_id": after, "processed": self._processed}))

    @workflow.query
    def processed(self) -> int:
        """Enrolments handled so far (across continue-as-new)."""
        return self._processed
