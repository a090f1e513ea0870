"""Inputs, signals and query results of OnboardingWorkflow (pydantic, carried by id)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class OnboardingStep(enum.StrEnum):
    """The path from sign-up to a live agent, in order."""

    account_created = "account_created"
    kommo_connected = "kommo_connected"
    pipelines_synced = "pipelines_synced"
    agent_created = "agent_created"
    agent_live = "agent_live"


STEP_ORDER: tuple[OnboardingStep, ...] = tuple(OnboardingStep)

# A later step cannot be done without these: a live agent was created, synced pipelines came from a
# connected account. So a signal for the later step completes its prerequisite too.
IMPLIED_STEPS: dict[OnboardingStep, tuple[OnboardingStep, ...]] = {
    OnboardingStep.pipelines_synced: (OnboardingStep.kommo_connected,),
    OnboardingStep.agent_live: (OnboardingStep.agent_created,),
}

# Steps that wait on the user; a stall there earns reminders. pipelines_synced is our own job (the
# CRM sync), so nagging the user about it would not help.
REMINDER_STEPS: frozenset[OnboardingStep] = frozenset(
    {OnboardingStep.kommo_connected, OnboardingStep.agent_created, OnboardingStep.agent_live}
)
# Days after a step became the current one at which a reminder goes out if it is still not done.
REMINDER_DAYS: tuple[int, ...] = (1, 3)


class OnboardingInput(BaseModel):
    """Start input: the organisation being onboarded."""

    org_id: uuid.UUID


class StepCompleted(BaseModel):
    """Signal: a step was done elsewhere (OAuth callback, agent creation...)."""

    step: OnboardingStep


class OnboardingReminder(BaseModel):
    """Activity input: queue the reminder for ``step``, ``day`` days into the stall, to the owners."""

    org_id: uuid.UUID
    step: OnboardingStep
    day: int


class StepState(BaseModel):
    """One step as shown to the user."""

    step: OnboardingStep
    done: bool
    completed_at: datetime | None = None


class ReminderSent(BaseModel):
    """A reminder the run queued: for which step, which day of the stall, when it fell due, its outbox rows."""

    step: OnboardingStep
    day: int
    at: datetime
    outbox_ids: list[uuid.UUID] = Field(default_factory=list)


class OnboardingProgress(BaseModel):
    """Query result: every step, the current one, and whether onboarding is complete."""

    org_id: uuid.UUID
    steps: list[StepState]
    current_step: OnboardingStep | None
    completed: bool
    reminders: list[ReminderSent] = Field(default_factory=list)
