"""Input and result of ``TriggerActivities.run_triggers`` and the mapping from a Kommo CRM event.

Pure pydantic: ``CrmEventWorkflow._dispatch`` builds the input with :func:`trigger_events_for` and
runs the activity (see ``workflows/trigger_dispatch.py``).
"""

from __future__ import annotations

import hashlib
import uuid

from pydantic import BaseModel, ConfigDict, Field

from domain.triggers import TriggerEventType
from workflows.crm_models import CrmEventInput, LeadSnapshot


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class TriggerEventInput(_Model):
    """One event about one lead (by Kommo id), as it came from Kommo or from a scheduler."""

    type: TriggerEventType
    lead_kommo_id: int
    pipeline_id: int | None = None
    status_id: int | None = None
    old_status_id: int | None = None
    tag: str | None = None
    text: str | None = Field(default=None, max_length=10_000)
    channel: str | None = None
    hours_without_reply: float | None = None
    every: str | None = None


class TriggerRunInput(_Model):
    """Evaluate the organisation's triggers for one event; ``event_key`` makes a redelivery a no-op."""

    org_id: uuid.UUID
    event_key: str = Field(min_length=1, max_length=255)
    event: TriggerEventInput
    # False when the lead's conversation already told its enrolments (it signals ``lead_replied`` itself).
    signal_enrollments: bool = True


class ActionOutcome(_Model):
    """What one action of a fired trigger did."""

    type: str
    outcome: str


class FiredTrigger(_Model):
    """A trigger that fired (or had already fired for this event) and its actions' outcomes."""

    trigger_id: uuid.UUID
    repeated: bool = False
    actions: list[ActionOutcome] = Field(default_factory=list)


class TriggerRunResult(_Model):
    """Everything ``run_triggers`` did for an event."""

    lead_found: bool
    signalled: int = 0
    fired: list[FiredTrigger] = Field(default_factory=list)

    def summary(self) -> str:
        """One line for the inbox row's outcome."""
        if not self.lead_found:
            return "lead unknown; no trigger evaluated"
        fired = ", ".join(f"{f.trigger_id}: " + "; ".join(f"{a.type} {a.outcome}" for a in f.actions)
                          for f in self.fired)
        return f"signalled {self.signalled} enrolment(s); " + (f"fired {fired}" if fired else "no trigger matched")


def trigger_events_for(event: CrmEventInput, lead: LeadSnapshot | None = None) -> list[tuple[str, TriggerEventInput]]:
    """The trigger events a Kommo CRM webhook event stands for, each with its own event key (none for entities
    triggers ignore).

    Only a chat message the lead wrote is ``incoming_message``; a manager's or a bot's is not. Kommo's lead
    webhooks carry no tag diff: ``tag_added`` comes from the re-fetched lead (``lead.added_tags``).
    """
    if event.lead_kommo_id is None:
        return []
    kommo_id, key = event.lead_kommo_id, event.event_key
    events: list[tuple[str, TriggerEventInput]] = []
    if event.entity == "lead" and event.action == "add":
        events.append((key, TriggerEventInput(type=TriggerEventType.lead_added, lead_kommo_id=kommo_id,
                                              pipeline_id=event.pipeline_id, status_id=event.status_id)))
    elif event.entity == "lead" and event.action == "status":
        events.append((key, TriggerEventInput(type=TriggerEventType.status_changed, lead_kommo_id=kommo_id,
                                              pipeline_id=event.pipeline_id, status_id=event.status_id,
                                              old_status_id=event.old_status_id)))
    elif event.entity == "message" and event.action == "add" and event.chat_author() == "lead":
        events.append((key, TriggerEventInput(type=TriggerEventType.incoming_message, lead_kommo_id=kommo_id,
                                              text=event.text, channel="kommo_chat")))
    if event.entity == "lead" and lead is not None:
        events += [(_tag_key(key, tag), TriggerEventInput(type=TriggerEventType.tag_added, lead_kommo_id=kommo_id,
                                                          tag=tag))
                   for tag in lead.added_tags]
    return events


def _tag_key(event_key: str, tag: str) -> str:
    """One key per (event, tag): two tags added at once are two events for ``per_lead_limit``."""
    digest = hashlib.sha256(tag.casefold().encode()).hexdigest()[:16]
    return f"{event_key[:200]}:tag:{digest}"
