"""Inputs and results of ``TriggerClockWorkflow`` and its activities (``activities/trigger_clock.py``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Attempts at one page: the workflow's retry policy and the activity's "last attempt" agree on it.
PAGE_ATTEMPTS = 5


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class TriggerClockInput(_Model):
    """One tick of an organisation's trigger clock.

    ``at`` is the instant the tick stands for; scheduled runs leave it unset and use their start time.
    Set it to replay a missed tick. ``after_lead_id`` and the counters carry a tick across
    continue-as-new.
    """

    org_id: uuid.UUID
    at: AwareDatetime | None = None
    after_lead_id: uuid.UUID | None = None
    evaluated: int = 0
    fired: int = 0
    failed: int = 0


class ClockPlanInput(_Model):
    """Whether the organisation's clock has anything to do."""

    org_id: uuid.UUID


class ClockPlan(_Model):
    """``active`` when the org is connected and has an armed time-based trigger; ``reason`` otherwise."""

    active: bool
    reason: str = ""


class FireDueInput(_Model):
    """Walk up to ``limit`` leads after ``after_lead_id`` and fire what is due at ``at``, at most ``budget`` events."""

    org_id: uuid.UUID
    at: AwareDatetime
    after_lead_id: uuid.UUID | None = None
    limit: int = Field(default=500, ge=1, le=5_000)
    budget: int = Field(default=5_000, ge=1)


class FireDueResult(_Model):
    """A page's work: ``evaluated`` (lead, event) pairs run through the triggers, ``fired`` new executions.

    ``next_after`` is the last lead done, None when the walk reached the end of the org's leads.
    """

    scanned: int = 0
    evaluated: int = 0
    fired: int = 0
    failed: int = 0
    next_after: uuid.UUID | None = None


class TriggerClockResult(_Model):
    """What one tick did, for the Temporal UI."""

    at: datetime
    evaluated: int = 0
    fired: int = 0
    failed: int = 0
    outcome: str = ""
