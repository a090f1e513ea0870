"""Inputs, signals, updates and query results of SequenceEnrollmentWorkflow and BulkEnrollmentWorkflow,
plus the inputs and results of the activities they call. Pure pydantic, carried by id.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.conditions import LeadFacts
from domain.sequences import Channel, CrmAction, ExitCriteria, ExitReason, SequenceDefinition


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# ---- the enrolment workflow -------------------------------------------------------------------


class HistoryEntry(_Model):
    """One thing that happened to the enrolment, for the ``state`` query."""

    at: datetime
    kind: str
    step_id: str | None = None
    outcome: str = ""
    detail: str = ""


class CarriedState(_Model):
    """What a run hands to the next one on continue-as-new."""

    step_no: int
    current_step: str | None
    started_at: datetime
    history: list[HistoryEntry] = Field(default_factory=list)
    last_reply_at: datetime | None = None
    last_send_at: datetime | None = None
    paused_at: datetime | None = None
    ai_follow_ups: int = 0


class EnrollmentInput(_Model):
    """Start input of ``sequence/{org}/{sequence}/{lead}``: the enrolment row and whose it is."""

    org_id: uuid.UUID
    agent_id: uuid.UUID
    sequence_id: uuid.UUID
    lead_id: uuid.UUID
    enrollment_id: uuid.UUID
    # Continue-as-new after this many steps in one run (a DAG of <= 100 steps rarely needs it, but a
    # long sequence with many retries and signals must not grow one history without bound).
    max_steps_per_run: int = Field(default=40, ge=1, le=1000)
    carry: CarriedState | None = None


class LeadReplied(_Model):
    """Signal: the lead wrote to us."""

    text: str | None = Field(default=None, max_length=4096)
    message_id: str | None = Field(default=None, max_length=255)


class CrmStageChanged(_Model):
    """Signal: the lead moved to another status in Kommo."""

    status_id: int
    pipeline_id: int | None = None


class LeadOptedOut(_Model):
    """Signal: the lead unsubscribed; it is never contacted again."""

    reason: str = Field(default="", max_length=500)


class PauseRequest(_Model):
    """Update: stop the clock until resumed. ``enrollment_id`` guards against a newer run under the same id."""

    enrollment_id: uuid.UUID | None = None
    reason: str = Field(default="", max_length=500)


class ResumeRequest(_Model):
    """Update: start the clock again; pending waits move later by the time spent paused."""

    enrollment_id: uuid.UUID | None = None


class SkipRequest(_Model):
    """Update: end the current wait now (a pending send is skipped); ``step_id`` must be the current step."""

    enrollment_id: uuid.UUID | None = None
    step_id: str | None = None


class CancelRequest(_Model):
    """Update: stop the enrolment for good."""

    enrollment_id: uuid.UUID | None = None
    reason: ExitReason = ExitReason.manual


class EnrollmentState(_Model):
    """Query result: where the enrolment is and what happened so far."""

    enrollment_id: uuid.UUID | None
    status: str
    current_step: str | None
    current_step_type: str | None
    next_action_at: datetime | None
    paused: bool
    exit_reason: str | None
    steps_executed: int
    history: list[HistoryEntry]


# ---- activities of the enrolment workflow -----------------------------------------------------


class BeginInput(_Model):
    """Load the frozen version of an enrolment; ``first_run`` also marks it active."""

    org_id: uuid.UUID
    enrollment_id: uuid.UUID
    first_run: bool = True


class EnrollmentPlan(_Model):
    """The version to run and whether the enrolment is still live (it may be cancelled before it starts)."""

    live: bool
    version_id: uuid.UUID
    definition: SequenceDefinition
    exit_criteria: ExitCriteria


class StepLog(_Model):
    """A step-log row to write once (by ``step_key``)."""

    step_id: str
    step_key: str
    kind: str
    outcome: str
    payload: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class ProgressInput(_Model):
    """Keep the enrolment row current; ``None`` fields are left as they are."""

    org_id: uuid.UUID
    enrollment_id: uuid.UUID
    status: str | None = None
    current_step: str | None = None
    next_action_at: datetime | None = None
    clear_next_action: bool = False
    steps_executed: int | None = None
    exit_reason: str | None = None
    error: str | None = None
    finished: bool = False
    log: StepLog | None = None


class WindowInput(_Model):
    """First instant ``>= earliest`` inside the enrolment's send window."""

    org_id: uuid.UUID
    enrollment_id: uuid.UUID
    earliest: datetime


SendKind = Literal["send_message", "ai_follow_up"]
"""Step types that send a message (the step log's ``kind``)."""


class ReserveInput(_Model):
    """Book a send slot under the daily cap; a higher ``reservation`` re-books (after a pause)."""

    org_id: uuid.UUID
    enrollment_id: uuid.UUID
    step_id: str
    step_key: str
    channel: Channel
    earliest: datetime
    reservation: int = 0
    kind: SendKind = "send_message"


class Reservation(_Model):
    """When the send is due and which capped day it counts against."""

    send_at: datetime
    cap_day: date | None


class ReleaseInput(_Model):
    """Give back a booked slot that will not be used (the send was skipped or the enrolment stopped)."""

    org_id: uuid.UUID
    step_key: str
    outcome: str


class SendInput(_Model):
    """Send one message step to the lead; ``step_key`` is the idempotency key (and amojo msgid)."""

    org_id: uuid.UUID
    enrollment_id: uuid.UUID
    step_id: str
    step_key: str
    channel: Channel
    text: str
    variant_id: str | None = None
    steps_executed: int = 0
    kind: SendKind = "send_message"
    # True for text the brain wrote: sent as is, never rendered as a template.
    literal: bool = False


class SendStatus(enum.StrEnum):
    """``suppressed``: not sent because the lead must not be contacted any more (see ``exit_reason``)."""

    sent = "sent"
    already_sent = "already_sent"
    suppressed = "suppressed"


class SendResult(_Model):
    """What the send activity did."""

    status: SendStatus
    exit_reason: ExitReason | None = None
    external_id: str | None = None


class CrmStepInput(_Model):
    """Perform a CRM action of a step on the lead in Kommo."""

    org_id: uuid.UUID
    enrollment_id: uuid.UUID
    step_id: str
    step_key: str
    action: CrmAction
    steps_executed: int = 0


class NotifyStepInput(_Model):
    """Create the in-app notification of a notify step (once per ``step_key``)."""

    org_id: uuid.UUID
    enrollment_id: uuid.UUID
    step_id: str
    step_key: str
    channel: Literal["in_app", "email"]
    title: str
    body: str
    user_id: uuid.UUID | None = None
    steps_executed: int = 0


class WebhookStepInput(_Model):
    """POST the enrolment to an outbound webhook (header ``Idempotency-Key: step_key``)."""

    org_id: uuid.UUID
    enrollment_id: uuid.UUID
    step_id: str
    step_key: str
    url: str
    payload: dict[str, object] = Field(default_factory=dict)
    steps_executed: int = 0


class StepDone(_Model):
    """A side-effect step finished (``repeated``: an earlier attempt had already done it); ``outbox_ids``
    are emails a notify step queued, for the workflow to hand to EmailDeliveryWorkflow."""

    outcome: str
    repeated: bool = False
    outbox_ids: list[uuid.UUID] = Field(default_factory=list)


class LeadFactsInput(_Model):
    """Read the lead as it is now (branch conditions)."""

    org_id: uuid.UUID
    lead_id: uuid.UUID


class LeadFactsResult(_Model):
    """The lead, or ``found`` False when it was deleted."""

    found: bool
    facts: LeadFacts = Field(default_factory=LeadFacts)


# ---- bulk fan-out -----------------------------------------------------------------------------


class BulkOperation(enum.StrEnum):
    """``start`` the pending enrolments of a request; ``cancel`` the live enrolments of a sequence."""

    start = "start"
    cancel = "cancel"


class BulkEnrollmentInput(_Model):
    """Start input of ``bulk-enrollment/{org}/{key}``; ``after_id`` is the keyset checkpoint."""

    org_id: uuid.UUID
    operation: BulkOperation
    request_id: uuid.UUID | None = None
    sequence_id: uuid.UUID | None = None
    cancel_reason: ExitReason = ExitReason.manual
    batch_size: int = Field(default=100, ge=1, le=1000)
    batches_per_run: int = Field(default=100, ge=1, le=1000)
    after_id: uuid.UUID | None = None
    processed: int = 0


class BatchInput(_Model):
    """One batch of a bulk operation: up to ``limit`` enrolments with ids after ``after_id``."""

    org_id: uuid.UUID
    operation: BulkOperation
    request_id: uuid.UUID | None = None
    sequence_id: uuid.UUID | None = None
    cancel_reason: ExitReason = ExitReason.manual
    after_id: uuid.UUID | None = None
    limit: int = 100


class BatchResult(_Model):
    """How many enrolments the batch handled and where the next batch starts (None: done)."""

    processed: int
    last_id: uuid.UUID | None


class BulkEnrollmentResult(_Model):
    """Result of the bulk workflow."""

    processed: int
