"""OnboardingWorkflow: walks a new organisation from sign-up to a live agent, reminding a stalled owner."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.email import EmailActivities
    from activities.store import StoreActivities
    from workflows.crm_models import CrmSyncInput
    from workflows.crm_sync import CrmSyncWorkflow
    from workflows.email_delivery import EmailDeliveryWorkflow
    from workflows.email_delivery_models import DeliverEmail
    from workflows.ids import crm_sync_id, email_delivery_id
    from workflows.onboarding_models import (
        IMPLIED_STEPS,
        REMINDER_DAYS,
        REMINDER_STEPS,
        STEP_ORDER,
        OnboardingInput,
        OnboardingProgress,
        OnboardingReminder,
        OnboardingStep,
        ReminderSent,
        StepCompleted,
        StepState,
    )

# Runs started before reminders existed wait for all steps in one condition; new runs take the
# step-by-step path with reminder timers, implied steps and the CRM-sync fallback. The marker keeps
# the histories of the old path replayable.
REMINDERS_PATCH = "onboarding-reminders-v1"
# Connecting Kommo starts the first CRM sync, which signals pipelines_synced when it finishes. If no
# such signal came this long after the connection, the run starts the sync itself (as a child).
CRM_SYNC_FALLBACK_AFTER = timedelta(minutes=10)


@workflow.defn
class OnboardingWorkflow:
    """One run per organisation (``onboarding/{org}``); steps complete as signals arrive, in any order."""

    def __init__(self) -> None:
        self._org_id: str = ""
        self._done: dict[OnboardingStep, StepState] = {}
        self._reminders: list[ReminderSent] = []

    @workflow.run
    async def run(self, data: OnboardingInput) -> OnboardingProgress:
        """Confirm the account, then wait for each step in turn; remind the owners at day 1 and 3 of a stall."""
        self._org_id = str(data.org_id)
        await workflow.execute_activity_method(
            StoreActivities.confirm_organization,
            data,
            start_to_close_timeout=timedelta(seconds=30),
        )
        self._mark(OnboardingStep.account_created)
        if workflow.patched(REMINDERS_PATCH):
            while (step := self._current()) is not None:
                await self._wait_for(data, step)
            workflow.set_current_details("Onboarding complete: the agent is live.")
        else:
            await workflow.wait_condition(lambda: all(step in self._done for step in STEP_ORDER))
        return self.progress()

    @workflow.signal
    def step_completed(self, signal: StepCompleted) -> None:
        """Record a step done elsewhere; signals may arrive out of order or twice."""
        self._mark(signal.step)
        if workflow.patched(REMINDERS_PATCH):
            for implied in IMPLIED_STEPS.get(signal.step, ()):
                self._mark(implied)

    @workflow.query
    def progress(self) -> OnboardingProgress:
        """Every step with its state, plus the reminders sent, for ``GET /api/onboarding/status``."""
        steps = [self._done.get(step, StepState(step=step, done=False)) for step in STEP_ORDER]
        current = next((s.step for s in steps if not s.done), None)
        return OnboardingProgress(
            org_id=self._org_id,
            steps=steps,
            current_step=current,
            completed=current is None,
            reminders=list(self._reminders),
        )

    def _current(self) -> OnboardingStep | None:
        return next((step for step in STEP_ORDER if step not in self._done), None)

    async def _wait_for(self, data: OnboardingInput, step: OnboardingStep) -> None:
        """Wait for ``step``; each reminder timer races the step and is dropped once the step is done."""
        workflow.set_current_details(f"Waiting for: {step.value}")
        if step == OnboardingStep.pipelines_synced:
            try:
                await workflow.wait_condition(
                    lambda: step in self._done, timeout=CRM_SYNC_FALLBACK_AFTER,
                    timeout_summary="start the CRM sync if none reported",
                )
                return
            except TimeoutError:
                await self._start_crm_sync(data)
        if step in REMINDER_STEPS:
            since = workflow.now()
            for day in REMINDER_DAYS:
                remaining = max(since + timedelta(days=day) - workflow.now(), timedelta(seconds=1))
                try:
                    await workflow.wait_condition(
                        lambda: step in self._done, timeout=remaining, timeout_summary=f"reminder day {day}: {step}"
                    )
                    return
                except TimeoutError:
                    await self._remind(data, step, day)
        await workflow.wait_condition(lambda: step in self._done)

    async def _start_crm_sync(self, data: OnboardingInput) -> None:
        """Run ``crm-sync/{org}`` as an abandoned child; one already running (the API's) is left to finish.

        Either way the sync signals ``pipelines_synced`` back when it completes.
        """
        try:
            await workflow.start_child_workflow(
                CrmSyncWorkflow.run,
                CrmSyncInput(org_id=data.org_id),
                id=crm_sync_id(data.org_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=workflow.info().typed_search_attributes,
                static_summary="CRM sync started by onboarding",
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("a CRM sync is already running; waiting for it to report")

    async def _remind(self, data: OnboardingInput, step: OnboardingStep, day: int) -> None:
        """Queue the reminder (one outbox row per owner) and hand each row to its own delivery run."""
        due_at = workflow.now()
        outbox_ids = await workflow.execute_activity_method(
            EmailActivities.queue_onboarding_reminder,
            OnboardingReminder(org_id=data.org_id, step=step, day=day),
            start_to_close_timeout=timedelta(seconds=30),
            summary=f"queue reminder day {day}",
        )
        for outbox_id in outbox_ids:
            # Abandoned on close: a reminder already queued still goes out if onboarding finishes first.
            await workflow.start_child_workflow(
                EmailDeliveryWorkflow.run,
                DeliverEmail(org_id=data.org_id, outbox_id=outbox_id),
                id=email_delivery_id(outbox_id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                search_attributes=workflow.info().typed_search_attributes,
                static_summary=f"Onboarding reminder day {day} ({step.value})",
            )
        self._reminders.append(ReminderSent(step=step, day=day, at=due_at, outbox_ids=outbox_ids))
        workflow.set_current_details(f"Waiting for: {step.value} (reminder day {day} sent)")

    def _mark(self, step: OnboardingStep) -> None:
        if step not in self._done:
            self._done[step] = StepState(step=step, done=True, completed_at=workflow.now())
