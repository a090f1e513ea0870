"""Inputs, signals and query results of OnboardingWorkflow (pydantic, carried by id)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import BaseModel


class OnboardingStep(enum.StrEnum):
    """The path from sign-up to a live agent, in order."""

    account_created = "account_created"
    kommo_connected = "kommo_connected"
    pipelines_synced = "pipelines_synced"
    agent_created = "agent_created"
    agent_live = "agent_live"


STEP_ORDER: tuple[OnboardingStep, ...] = tuple(OnboardingStep)


class OnboardingInput(BaseModel):
    """Start input: the organisation being onboarded."""

    org_id: uuid.UUID


class StepCompleted(BaseModel):
    """Signal: a step was done elsewhere (OAuth callback, agent creation...)."""

    step: OnboardingStep


class StepState(BaseModel):
    """One step as shown to the user."""

    step: OnboardingStep
    done: bool
    completed_at: datetime | None = None


class OnboardingProgress(BaseModel):
    """Query result: every step, the current one, and whether onboarding is complete."""

    org_id: uuid.UUID
    steps: list[StepState]
    current_step: OnboardingStep | None
    completed: bool
