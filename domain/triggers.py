"""Triggers: which CRM events start which actions. Pure: matching only, no side effects.

A trigger is *when* (an event type with optional filters), *if* (conditions on the lead, all must
hold), *then* (actions), limited to ``per_lead_limit`` executions per lead. :func:`match_triggers`
picks the triggers an event fires; performing the actions is ``activities.triggers``' job.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from domain.conditions import Condition, LeadFacts, evaluate_all
from domain.sequences import Channel

__all__ = [
    "AssignAgentAction",
    "CallWebhookAction",
    "EnrollInSequenceAction",
    "IncomingMessageOn",
    "LeadAddedOn",
    "MoveStageAction",
    "NoReplyOn",
    "NotifyAction",
    "ScheduleOn",
    "SendMessageAction",
    "StatusChangedOn",
    "StopSequencesAction",
    "TagAddedOn",
    "TriggerAction",
    "TriggerDefinition",
    "TriggerEvent",
    "TriggerEventType",
    "TriggerMatch",
    "TriggerOn",
    "event_matches",
    "match_triggers",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TriggerEventType(enum.StrEnum):
    """Kinds of things that happen to a lead."""

    lead_added = "lead_added"
    status_changed = "status_changed"
    incoming_message = "incoming_message"
    tag_added = "tag_added"
    no_reply_for_hours = "no_reply_for_hours"
    schedule = "schedule"


# ---- when ---------------------------------------------------------------------------------------


class LeadAddedOn(_Frozen):
    """A lead was created (in ``pipeline_id`` when given)."""

    type: Literal["lead_added"] = "lead_added"
    pipeline_id: int | None = None


class StatusChangedOn(_Frozen):
    """A lead moved to ``status_id`` (any when unset) in ``pipeline_id`` (any when unset), optionally
    only when it came from ``from_status_id``."""

    type: Literal["status_changed"] = "status_changed"
    status_id: int | None = None
    pipeline_id: int | None = None
    from_status_id: int | None = None


class IncomingMessageOn(_Frozen):
    """The lead wrote to us (on ``channel``; containing ``contains``, case-insensitively)."""

    type: Literal["incoming_message"] = "incoming_message"
    channel: Channel | None = None
    contains: str | None = Field(default=None, min_length=1, max_length=200)


class TagAddedOn(_Frozen):
    """``tag`` was added to the lead."""

    type: Literal["tag_added"] = "tag_added"
    tag: str = Field(min_length=1, max_length=100)


class NoReplyOn(_Frozen):
    """The lead has not answered our last message for ``hours`` hours."""

    type: Literal["no_reply_for_hours"] = "no_reply_for_hours"
    hours: int = Field(ge=1, le=24 * 365)


class ScheduleOn(_Frozen):
    """A periodic tick (``hourly``/``daily``/``weekly``) for every lead the conditions select."""

    type: Literal["schedule"] = "schedule"
    every: Literal["hourly", "daily", "weekly"] = "daily"


TriggerOn = Annotated[
    LeadAddedOn | StatusChangedOn | IncomingMessageOn | TagAddedOn | NoReplyOn | ScheduleOn,
    Field(discriminator="type"),
]


class TriggerEvent(_Frozen):
    """What happened, to which lead, as the matcher sees it."""

    type: TriggerEventType
    lead: LeadFacts
    pipeline_id: int | None = None
    status_id: int | None = None
    old_status_id: int | None = None
    tag: str | None = None
    text: str | None = None
    channel: str | None = None
    hours_without_reply: float | None = None
    every: str | None = None


def event_matches(on: TriggerOn, event: TriggerEvent) -> bool:
    """Whether ``event`` is the kind of event ``on`` waits for, filters included."""
    if on.type != event.type.value:
        return False
    if isinstance(on, LeadAddedOn):
        return on.pipeline_id is None or on.pipeline_id == event.pipeline_id
    if isinstance(on, StatusChangedOn):
        return (
            (on.status_id is None or on.status_id == event.status_id)
            and (on.pipeline_id is None or on.pipeline_id == event.pipeline_id)
            and (on.from_status_id is None or on.from_status_id == event.old_status_id)
        )
    if isinstance(on, IncomingMessageOn):
        if on.channel is not None and on.channel != event.channel:
            return False
        return on.contains is None or on.contains.casefold() in (event.text or "").casefold()
    if isinstance(on, TagAddedOn):
        return event.tag is not None and event.tag.strip().casefold() == on.tag.strip().casefold()
    if isinstance(on, NoReplyOn):
        return event.hours_without_reply is not None and event.hours_without_reply >= on.hours
    return on.every == event.every


# ---- then ---------------------------------------------------------------------------------------


class EnrollInSequenceAction(_Frozen):
    """Enrol the lead in one of the agent's sequences (its enrolment rules still apply)."""

    type: Literal["enroll_in_sequence"] = "enroll_in_sequence"
    sequence_id: uuid.UUID


class StopSequencesAction(_Frozen):
    """Cancel the lead's running enrolments in these sequences (all of the agent's when empty)."""

    type: Literal["stop_sequences"] = "stop_sequences"
    sequence_ids: tuple[uuid.UUID, ...] = Field(default=(), max_length=50)


class AssignAgentAction(_Frozen):
    """Hand the lead to an agent (this trigger's agent when unset)."""

    type: Literal["assign_agent"] = "assign_agent"
    agent_id: uuid.UUID | None = None


class SendMessageAction(_Frozen):
    """Send a message to the lead now (a template over the lead variables)."""

    type: Literal["send_message"] = "send_message"
    channel: Channel = "kommo_chat"
    text: str = Field(min_length=1, max_length=4096)


class MoveStageAction(_Frozen):
    """Move the lead to ``status_id`` (in ``pipeline_id``, or its current pipeline)."""

    type: Literal["move_stage"] = "move_stage"
    status_id: int = Field(ge=1)
    pipeline_id: int | None = Field(default=None, ge=1)


class NotifyAction(_Frozen):
    """Notify the organisation in-app."""

    type: Literal["notify"] = "notify"
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=4096)


class CallWebhookAction(_Frozen):
    """POST the event and lead as JSON (plus ``payload``) to ``url``."""

    type: Literal["call_webhook"] = "call_webhook"
    url: HttpUrl
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("payload")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(repr(value)) > 10_000:
            raise ValueError("payload must be smaller than 10 kB")
        return value


TriggerAction = Annotated[
    EnrollInSequenceAction
    | StopSequencesAction
    | AssignAgentAction
    | SendMessageAction
    | MoveStageAction
    | NotifyAction
    | CallWebhookAction,
    Field(discriminator="type"),
]


class TriggerDefinition(_Frozen):
    """A stored trigger, as the matcher needs it."""

    id: uuid.UUID
    agent_id: uuid.UUID
    on: TriggerOn
    conditions: tuple[Condition, ...] = Field(default=(), max_length=20)
    actions: tuple[TriggerAction, ...] = Field(min_length=1, max_length=10)
    per_lead_limit: int | None = Field(default=None, ge=1)
    enabled: bool = True


class TriggerMatch(_Frozen):
    """A trigger the event fired, with the actions to perform."""

    trigger_id: uuid.UUID
    agent_id: uuid.UUID
    actions: tuple[TriggerAction, ...]


def match_triggers(
    event: TriggerEvent,
    triggers: Sequence[TriggerDefinition],
    executions: Mapping[uuid.UUID, int] | None = None,
) -> list[TriggerMatch]:
    """The enabled triggers ``event`` fires, in the given order.

    ``executions`` counts past executions per trigger *for this lead*; a trigger at its
    ``per_lead_limit`` does not fire. (The caller claims the execution atomically afterwards, so two
    concurrent events cannot both take the last one.)
    """
    done = executions or {}
    matches: list[TriggerMatch] = []
    for trigger in triggers:
        if not trigger.enabled or not event_matches(trigger.on, event):
            continue
        if trigger.per_lead_limit is not None and done.get(trigger.id, 0) >= trigger.per_lead_limit:
            continue
        if not evaluate_all(trigger.conditions, event.lead):
            continue
        matches.append(TriggerMatch(trigger_id=trigger.id, agent_id=trigger.agent_id, actions=trigger.actions))
    return matches
