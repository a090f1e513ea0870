"""Sequences, enrolments and triggers: request and response bodies."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from api.schemas.account import END_OF_DAY, WEEKDAYS, WeekHours
from api.schemas.common import InputModel, PatchModel, ReadModel
from db.models import EnrollmentStatus, SequenceStatus
from domain.conditions import Condition
from domain.schedule import is_valid_time_zone
from domain.sequences import ALWAYS_OPEN, EnrollmentRules, ExitCriteria, Step
from domain.triggers import TriggerAction, TriggerOn
from workflows.sequence_models import EnrollmentState

MAX_BATCH = 10_000
"""Most leads one enrolment request may name."""

_STORED_END_OF_DAY = "23:59:59.999999"


class SendWindowIn(InputModel):
    """Override of the organisation's send window for one sequence (fields left out are inherited).

    ``any_time`` sends at any hour of any day; otherwise ``business_hours``/``holidays`` replace the
    organisation's. The lead's own time zone, when known, still decides what "09:00" means.
    """

    time_zone: str | None = Field(default=None, max_length=64, description="IANA zone, e.g. Europe/Berlin")
    business_hours: WeekHours | None = None
    holidays: list[date] | None = Field(default=None, max_length=1000)
    any_time: bool = False

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_time_zone(value):
            raise ValueError("unknown IANA time zone")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> SendWindowIn:
        if self.any_time and self.business_hours is not None:
            raise ValueError("any_time and business_hours exclude each other")
        return self

    def to_storage(self) -> dict[str, Any]:
        """The JSON ``domain.sequences.send_window_for`` reads."""
        stored: dict[str, Any] = {"time_zone": self.time_zone}
        if self.any_time:
            stored["business_hours"] = ALWAYS_OPEN
        elif self.business_hours is not None:
            stored["business_hours"] = {
                str(i): [{"start": s.start, "end": _STORED_END_OF_DAY if s.end == END_OF_DAY else s.end}
                         for s in getattr(self.business_hours, day)]
                for i, day in enumerate(WEEKDAYS)
            }
        if self.holidays is not None:
            stored["holidays"] = sorted({d.isoformat() for d in self.holidays})
        return stored


class SequenceCreate(InputModel):
    """A new sequence: its steps (the first is the entry), who may enter, and when they leave."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    status: Literal["active", "paused"] = "active"
    steps: list[Step] = Field(min_length=1, max_length=100)
    rules: EnrollmentRules = Field(default_factory=EnrollmentRules)
    exit_criteria: ExitCriteria = Field(default_factory=ExitCriteria)
    send_window: SendWindowIn | None = None


class SequenceUpdate(PatchModel):
    """Partial update. Changing ``steps`` or ``exit_criteria`` creates a new version; running
    enrolments keep theirs. ``send_window: null`` returns to the organisation's window."""

    nullable: ClassVar[frozenset[str]] = frozenset({"send_window"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    status: Literal["active", "paused"] | None = None
    steps: list[Step] | None = Field(default=None, min_length=1, max_length=100)
    rules: EnrollmentRules | None = None
    exit_criteria: ExitCriteria | None = None
    send_window: SendWindowIn | None = None


class SequenceItem(SequenceUpdate):
    """One entry of a replace: ``id`` names an existing sequence (only the fields sent change); without
    ``id`` it is a new sequence and needs ``name`` and ``steps``."""

    id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _new_needs_definition(self) -> SequenceItem:
        if self.id is None and (self.name is None or self.steps is None):
            raise ValueError("a new sequence (no id) needs name and steps")
        return self


class SequencesReplace(InputModel):
    """The agent's sequences in their new order. Listed ones are kept (and changed), new ones created,
    and any not listed are archived like DELETE does."""

    sequences: list[SequenceItem] = Field(max_length=200)


class SequenceRead(ReadModel):
    """A sequence with its current version."""

    id: uuid.UUID
    agent_id: uuid.UUID
    name: str
    description: str
    status: SequenceStatus
    position: int
    version: int
    version_id: uuid.UUID | None
    steps: list[dict[str, Any]]
    rules: dict[str, Any]
    exit_criteria: dict[str, Any]
    send_window: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


# ---- enrolments -------------------------------------------------------------------------------


class EnrollmentCreate(InputModel):
    """Leads to enrol, by our id and/or by Kommo lead id (at most 10,000 in all)."""

    lead_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_BATCH)
    kommo_lead_ids: list[int] = Field(default_factory=list, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _some_leads(self) -> EnrollmentCreate:
        total = len(self.lead_ids) + len(self.kommo_lead_ids)
        if total == 0:
            raise ValueError("name at least one lead in lead_ids or kommo_lead_ids")
        if total > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} leads per request")
        return self


class EnrollmentResult(BaseModel):
    """One requested lead: enrolled, or the reason it was not."""

    lead_id: uuid.UUID | None
    kommo_lead_id: int | None
    enrolled: bool
    reason: str | None = None
    enrollment_id: uuid.UUID | None = None
    workflow_id: str | None = None


class EnrollmentBatchRead(BaseModel):
    """Answer to an enrolment request; ``bulk_workflow_id`` is set when the starts were handed to a workflow."""

    request_id: uuid.UUID
    enrolled: int
    rejected: int
    results: list[EnrollmentResult]
    bulk_workflow_id: str | None = None


class EnrollmentRead(ReadModel):
    """An enrolment as our database records it."""

    id: uuid.UUID
    sequence_id: uuid.UUID
    version_id: uuid.UUID
    agent_id: uuid.UUID
    lead_id: uuid.UUID
    status: EnrollmentStatus
    workflow_id: str
    source: str
    current_step: str | None
    next_action_at: datetime | None
    steps_executed: int
    exit_reason: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class EnrollmentDetail(EnrollmentRead):
    """An enrolment with the live state of its run and where to see it in the Temporal UI."""

    temporal_url: str
    state: EnrollmentState | None = None


class EnrollmentAction(InputModel):
    """Steer a running enrolment: pause, resume, or skip the current wait (optionally naming the step)."""

    action: Literal["pause", "resume", "skip"]
    step_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=500)


# ---- triggers ---------------------------------------------------------------------------------


class TriggerCreate(InputModel):
    """When ``event`` happens to a lead and every condition holds, perform ``actions`` (at most
    ``per_lead_limit`` times per lead)."""

    name: str = Field(min_length=1, max_length=200)
    event: TriggerOn
    conditions: list[Condition] = Field(default_factory=list, max_length=20)
    actions: list[TriggerAction] = Field(min_length=1, max_length=10)
    per_lead_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    enabled: bool = True


class TriggerUpdate(PatchModel):
    """Partial update; ``per_lead_limit: null`` removes the limit."""

    nullable: ClassVar[frozenset[str]] = frozenset({"per_lead_limit"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    event: TriggerOn | None = None
    conditions: list[Condition] | None = Field(default=None, max_length=20)
    actions: list[TriggerAction] | None = Field(default=None, min_length=1, max_length=10)
    per_lead_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    enabled: bool | None = None


class TriggerRead(ReadModel):
    """A trigger as the API shows it."""

    id: uuid.UUID
    agent_id: uuid.UUID
    name: str
    event: dict[str, Any]
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    per_lead_limit: int | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
