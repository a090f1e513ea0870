"""Input and result of ``TriggerActivities.run_triggers`` and the mapping from a Kommo CRM event.

Pure pydantic: ``CrmEventWorkflow._dispatch`` builds the input with :func:`trigger_events_for` and
runs the activity (see ``workflows/trigger_dispatch.py``).
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from domain.triggers import TriggerEventType
from workflows.crm_models import CrmEventInput


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


def trigger_events_for(event: CrmEventInput) -> list[TriggerEventInput]:
    """The trigger events a Kommo CRM webhook event stands for (none for entities triggers ignore).

    Only a chat message the lead wrote is ``incoming_message``; a manager's or a bot's is not.
    Tag changes arrive as plain lead updates without a diff, so ``tag_added`` comes from elsewhere.
    """
    if event.lead_kommo_id is None:
        return []
    lead = event.lead_kommo_id
    if event.entity == "lead" and event.action == "add":
        return [TriggerEventInput(type=TriggerEventType.lead_added, lead_kommo_id=lead,
                                  pipeline_id=event.pipeline_id, status_id=event.status_id)]
    if event.entity == "lead" and event.action == "status":
        return [TriggerEventInput(type=TriggerEventType.status_changed, lead_kommo_id=lead,
                                  pipeline_id=event.pipeline_id, status_id=event.status_id,
                                  old_status_id=event.old_status_id)]
    if event.entity == "message" and event.action == "add" and event.chat_author() == "lead":
        return [TriggerEventInput(type=TriggerEventType.incoming_message, lead_kommo_id=lead, text=event.text,
                                  channel="kommo_chat")]
    return []
