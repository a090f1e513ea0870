"""Inputs and results of CrmSyncWorkflow, CrmEventWorkflow and the Kommo activities they call.

Pure pydantic: workflows import it directly; activities import it too. Everything carries ids
(org, inbox row, Kommo ids), never ORM rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# ----------------------------------------------------------------------------- workflows


class CrmSyncInput(BaseModel):
    """Start input of ``crm-sync/{org}``; ``full`` ignores the incremental lead checkpoint."""

    org_id: uuid.UUID
    full: bool = False


class CrmSyncResult(BaseModel):
    """What one sync wrote."""

    org_id: uuid.UUID
    pipelines: int
    statuses: int
    users: int
    custom_fields: int
    leads: int
    incremental_since: int | None
    schedule: str


class CrmEventInput(BaseModel):
    """Start input of ``crm-event/{org}/{event_key}``: the stored inbox row plus the typed event."""

    org_id: uuid.UUID
    inbox_event_id: uuid.UUID
    event_key: str
    entity: str
    action: str
    entity_id: str
    lead_kommo_id: int | None = None
    contact_kommo_id: int | None = None
    status_id: int | None = None
    pipeline_id: int | None = None
    old_status_id: int | None = None
    text: str | None = None
    chat_id: str | None = None
    talk_id: int | None = None
    message_type: str | None = None
    author_type: str | None = None
    author_name: str | None = None

    def chat_author(self) -> Literal["lead", "manager"] | None:
        """Who wrote a ``message[add]``: the lead, a Kommo user (a manager), or None for bots and integrations.

        Kommo marks the client's messages ``incoming``; of the ``outgoing`` ones only a person's count (ours
        and other bots' must not pause the agent or look like a reply).
        """
        if self.message_type == "incoming":
            return "lead"
        if self.author_type in KOMMO_USER_AUTHORS:
            return "manager"
        if self.message_type is None and self.author_type in (None, "external", "contact"):
            return "lead"
        return None


# How Kommo's chat webhooks name a message written by one of the account's users.
KOMMO_USER_AUTHORS = ("user", "internal")


class CrmEventResult(BaseModel):
    """How the event was handled; the same text is stored on the inbox row."""

    outcome: str
    lead_id: uuid.UUID | None = None


# ----------------------------------------------------------------------------- activities


class OrgInput(BaseModel):
    """An activity that only needs the organisation."""

    org_id: uuid.UUID


class PipelineCounts(BaseModel):
    """Pipelines and statuses written by ``sync_pipelines``."""

    pipelines: int
    statuses: int


class SyncPlan(BaseModel):
    """Where an incremental lead sync starts (Kommo ``updated_at``, unix seconds; None = everything)
    and the wall-clock start that becomes the next checkpoint.

    The start comes from the activity, not ``workflow.now()``: the checkpoint is compared with
    Kommo's clock, and Temporal's clock may differ (time skipping, a backlog of scheduled runs).
    """

    updated_since: int | None
    started_at: datetime


class LeadsBatchInput(BaseModel):
    """Up to ``max_pages`` pages of leads from ``start_page``, filtered by ``updated_since``."""

    org_id: uuid.UUID
    updated_since: int | None = None
    start_page: int = Field(default=1, ge=1)
    max_pages: int = Field(default=20, ge=1, le=200)


class LeadsBatchResult(BaseModel):
    """Leads upserted; ``next_page`` is None when Kommo has no more."""

    upserted: int
    next_page: int | None


class FinishSyncInput(BaseModel):
    """Record a successful sync that started at ``started_at`` (the next incremental checkpoint)."""

    org_id: uuid.UUID
    started_at: datetime


class FetchLeadInput(BaseModel):
    """Re-fetch one lead through the Kommo API and upsert our mirror."""

    org_id: uuid.UUID
    kommo_lead_id: int


class LeadSnapshot(BaseModel):
    """Our mirror of a lead after a fetch (``found`` False: Kommo no longer has it)."""

    found: bool
    lead_id: uuid.UUID | None = None
    kommo_id: int
    pipeline_id: int | None = None
    status_id: int | None = None
    name: str = ""
    tags: list[str] = Field(default_factory=list)
    # Tags the lead has now and our mirror did not have before this fetch.
    added_tags: list[str] = Field(default_factory=list)
    kommo_updated_at: int | None = None


class RecordOutcomeInput(BaseModel):
    """Mark an inbox row processed."""

    inbox_event_id: uuid.UUID
    outcome: str = Field(max_length=2000)
    workflow_id: str


class LeadActionBase(BaseModel):
    """A CRM action on one lead (used by triggers and sequences)."""

    model_config = ConfigDict(frozen=True)

    org_id: uuid.UUID
    kommo_lead_id: int


class UpdateLeadStatusInput(LeadActionBase):
    """Move a lead to ``status_id`` (in ``pipeline_id``, or its current pipeline)."""

    status_id: int
    pipeline_id: int | None = None


class AddNoteInput(LeadActionBase):
    """Add a text note to a lead."""

    text: str = Field(min_length=1, max_length=10_000)


class AddTagInput(LeadActionBase):
    """Add tags to a lead, keeping its others."""

    tags: list[str] = Field(min_length=1, max_length=50)


class CreateTaskInput(LeadActionBase):
    """Create a task on a lead, due at ``complete_till``."""

    text: str = Field(min_length=1, max_length=10_000)
    complete_till: datetime
    responsible_user_id: int | None = None
    task_type_id: int = 1


class SetLeadFieldInput(LeadActionBase):
    """Set one custom field of a lead (``enum_id`` for select fields)."""

    field_id: int
    value: str | int | float | bool | None = None
    enum_id: int | None = None


class CrmActionResult(BaseModel):
    """What Kommo answered: the entity touched and its new ``updated_at`` when given."""

    kommo_lead_id: int
    entity_id: int | None = None
    kommo_updated_at: int | None = None
