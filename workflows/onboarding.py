"""OnboardingWorkflow: walks a new organisation from sign-up to a live agent."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.store import StoreActivities
    from workflows.onboarding_models import (
        STEP_ORDER,
        OnboardingInput,
        OnboardingProgress,
        OnboardingStep,
        StepCompleted,
        StepState,
    )


@workflow.defn
class OnboardingWorkflow:
    """One run per organisation (``onboarding/{org}``); steps complete in order as signals arrive."""

    def __init__(self) -> None:
        self._org_id: str = ""
        self._done: dict[OnboardingStep, StepState] = {}

    @workflow.run
    async def run(self, data: OnboardingInput) -> OnboardingProgress:
        """Confirm the account, then wait for each later step's signal until the agent is live."""
        self._org_id = str(data.org_id)
        await workflow.execute_activity_method(
            StoreActivities.confirm_organization,
            data,
            start_to_close_timeout=timedelta(seconds=30),
        )
        self._mark(OnboardingStep.account_created)
        await workflow.wait_condition(lambda: all(step in self._done for step in STEP_ORDER))
        return self.progress()

    @workflow.signal
    def step_completed(self, signal: StepCompleted) -> None:
        """Record a step done elsewhere; signals may arrive out of order or twice."""
        self._mark(signal.step)

    @workflow.query
    def progress(self) -> OnboardingProgress:
        """Every step with its state, for ``GET /api/onboarding/status``."""
        steps = [self._done.get(step, StepState(step=step, done=False)) for step in STEP_ORDER]
        current = next((s.step for s in steps if not s.done), None)
        return OnboardingProgress(
            org_id=self._org_id,
            steps=steps,
            current_step=current,
            completed=current is None,
        )

    def _mark(self, step: OnboardingStep) -> None:
        if step not in self._done:
            self._done[step] = StepState(step=step, done=True, completed_at=workflow.now())
