"""Sequence definitions, graph validation, enrolment rules, exit criteria and send planning. Pure.

A sequence is a graph of steps. The first step is the entry; every step names its successor in
``next`` (``None`` ends the enrolment), except ``branch`` (``then``/``else``) and ``end``. A
``wait_for_reply`` step may also jump to ``on_reply``. The graph must be acyclic and every step
reachable from the entry: an enrolment then runs each step at most once and always terminates, which
also makes ``(enrolment, step counter, step id)`` a stable idempotency key for every side effect.

Nothing here touches a clock, the network or a database, so Temporal workflows may import it.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, field_validator, model_validator

from domain.conditions import Condition, LeadFacts
from domain.schedule import (
    MAX_SEARCH_DAYS,
    BusinessHours,
    DailyCap,
    NoSendWindowError,
    SendWindow,
    next_send_time,
    resolve_time_zone,
)

__all__ = [
    "ALWAYS_OPEN",
    "LOST_STATUS_ID",
    "MAX_STEPS",
    "WON_STATUS_ID",
    "AddNote",
    "AddTag",
    "AiFollowUpStep",
    "BranchStep",
    "Channel",
    "CreateTask",
    "CrmAction",
    "CrmActionStep",
    "EndStep",
    "EnrollmentRefusal",
    "EnrollmentRules",
    "EnrollmentVerdict",
    "ExitCriteria",
    "ExitReason",
    "GraphProblem",
    "MessageVariant",
    "MoveStage",
    "NotifyStep",
    "OtherEnrollment",
    "PriorEnrollments",
    "ReenrollmentPolicy",
    "SendMessageStep",
    "SequenceDefinition",
    "SetField",
    "StageFilter",
    "Step",
    "WaitForReplyStep",
    "WaitStep",
    "WebhookStep",
    "check_enrollment",
    "choose_variant",
    "exit_for_opt_out",
    "exit_for_reply",
    "exit_for_stage",
    "schedule_send",
    "send_window_for",
    "successors",
    "validate_graph",
]

WON_STATUS_ID = 142
LOST_STATUS_ID = 143
MAX_STEPS = 100
"""Most steps a sequence may have (the whole graph is loaded by every enrolment)."""
MAX_WAIT = timedelta(days=365)

StepId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
Channel = Literal["kommo_chat", "whatsapp", "telegram", "instagram", "facebook", "viber", "email"]
"""Channels a message step can use (the agent channel types); every one is sent through Kommo chats."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _bounded_wait(value: timedelta | None, name: str) -> timedelta | None:
    if value is not None and not timedelta(0) < value <= MAX_WAIT:
        raise ValueError(f"{name} must be more than 0 and at most {MAX_WAIT.days} days")
    return value


# ---- steps ------------------------------------------------------------------------------------


class _StepBase(_Frozen):
    id: StepId
    name: str = Field(default="", max_length=200)
    next: StepId | None = None


class WaitStep(_StepBase):
    """Wait ``duration``; with ``until_next_window`` then (or only) until the send window opens."""

    type: Literal["wait"] = "wait"
    duration: timedelta | None = None
    until_next_window: bool = False

    @model_validator(mode="after")
    def _something_to_wait_for(self) -> WaitStep:
        _bounded_wait(self.duration, "duration")
        if self.duration is None and not self.until_next_window:
            raise ValueError("a wait needs a duration, until_next_window, or both")
        return self


class MessageVariant(_Frozen):
    """One A/B variant of a message; chosen with probability ``weight`` / total weight."""

    id: StepId
    text: str = Field(min_length=1, max_length=4096)
    weight: int = Field(default=1, ge=1, le=1000)


class SendMessageStep(_StepBase):
    """Send ``text`` (or one of ``variants``) to the lead, inside the send window and under the caps.

    Text is a template over the lead variables (``{{ first_name }}``...); see ``domain.sequence_messages``.
    """

    type: Literal["send_message"] = "send_message"
    channel: Channel = "kommo_chat"
    text: str | None = Field(default=None, min_length=1, max_length=4096)
    variants: tuple[MessageVariant, ...] = Field(default=(), max_length=10)

    @model_validator(mode="after")
    def _text_or_variants(self) -> SendMessageStep:
        if (self.text is None) == (not self.variants):
            raise ValueError("give either text or at least two variants")
        if self.variants:
            if len(self.variants) < 2:
                raise ValueError("an A/B test needs at least two variants")
            ids = [v.id for v in self.variants]
            if len(set(ids)) != len(ids):
                raise ValueError("variant ids must be unique")
        return self


class AiFollowUpStep(_StepBase):
    """Send a message the agent's brain writes in context (``BrainActivities.compose_follow_up``: the last
    conversation, its stage, the fields still missing), inside the send window and under the caps like
    ``send_message``; ``fallback_text`` (a template, like ``send_message.text``) is sent when no live agent
    can write one, and without it the step is skipped.
    """

    type: Literal["ai_follow_up"] = "ai_follow_up"
    channel: Channel = "kommo_chat"
    agent_id: uuid.UUID | None = None
    fallback_text: str | None = Field(default=None, min_length=1, max_length=4096)


class WaitForReplyStep(_StepBase):
    """Wait up to ``timeout`` for a reply: a reply goes to ``on_reply`` (ends the enrolment if unset),
    the timeout to ``next``."""

    type: Literal["wait_for_reply"] = "wait_for_reply"
    timeout: timedelta
    on_reply: StepId | None = None

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        _bounded_wait(value, "timeout")
        return value


class MoveStage(_Frozen):
    """Move the lead to ``status_id`` (in ``pipeline_id``, or its current pipeline)."""

    kind: Literal["move_stage"] = "move_stage"
    status_id: int = Field(ge=1)
    pipeline_id: int | None = Field(default=None, ge=1)


class AddTag(_Frozen):
    """Add tags, keeping the lead's others."""

    kind: Literal["add_tag"] = "add_tag"
    tags: tuple[Annotated[str, StringConstraints(min_length=1, max_length=100)], ...] = Field(
        min_length=1, max_length=20
    )


class CreateTask(_Frozen):
    """Create a Kommo task on the lead, due ``due_in`` after the step runs."""

    kind: Literal["create_task"] = "create_task"
    text: str = Field(min_length=1, max_length=2000)
    due_in: timedelta = timedelta(days=1)
    responsible_user_id: int | None = None

    @field_validator("due_in")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        _bounded_wait(value, "due_in")
        return value


class AddNote(_Frozen):
    """Add a text note to the lead (a template over the lead variables)."""

    kind: Literal["add_note"] = "add_note"
    text: str = Field(min_length=1, max_length=4096)


class SetField(_Frozen):
    """Set one Kommo custom field of the lead."""

    kind: Literal["set_field"] = "set_field"
    field_id: int = Field(ge=1)
    value: str | int | float | bool | None = None
    enum_id: int | None = None


CrmAction = Annotated[MoveStage | AddTag | CreateTask | AddNote | SetField, Field(discriminator="kind")]


class CrmActionStep(_StepBase):
    """Change the lead in Kommo."""

    type: Literal["crm_action"] = "crm_action"
    action: CrmAction


class NotifyStep(_StepBase):
    """Tell the team (in-app notification; ``email`` also queues it for the org's mail)."""

    type: Literal["notify"] = "notify"
    channel: Literal["in_app", "email"] = "in_app"
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=4096)
    user_id: uuid.UUID | None = None


class WebhookStep(_StepBase):
    """POST the enrolment and lead as JSON (plus ``payload``) to ``url``."""

    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("payload")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(repr(value)) > 10_000:
            raise ValueError("payload must be smaller than 10 kB")
        return value


class BranchStep(_StepBase):
    """Go to ``then`` when ``condition`` holds, else to ``else``."""

    type: Literal["branch"] = "branch"
    condition: Condition
    then: StepId
    else_: StepId = Field(alias="else")

    @model_validator(mode="after")
    def _no_next(self) -> BranchStep:
        if self.next is not None:
            raise ValueError("a branch continues through then/else, not next")
        return self


class EndStep(_StepBase):
    """End the enrolment (completed)."""

    type: Literal["end"] = "end"

    @model_validator(mode="after")
    def _no_next(self) -> EndStep:
        if self.next is not None:
            raise ValueError("an end step has no next")
        return self


Step = Annotated[
    WaitStep
    | SendMessageStep
    | AiFollowUpStep
    | WaitForReplyStep
    | CrmActionStep
    | NotifyStep
    | WebhookStep
    | BranchStep
    | EndStep,
    Field(discriminator="type"),
]


def successors(step: Step) -> list[tuple[str, str]]:
    """``(field, target id)`` for every edge leaving ``step``, in a stable order."""
    edges: list[tuple[str, str]] = []
    if isinstance(step, BranchStep):
        edges += [("then", step.then), ("else", step.else_)]
    if isinstance(step, WaitForReplyStep) and step.on_reply is not None:
        edges.append(("on_reply", step.on_reply))
    if step.next is not None:
        edges.append(("next", step.next))
    return edges


# ---- graph validation -------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphProblem:
    """One reason a step graph is rejected; ``path`` points into the steps list (``steps[2].next``)."""

    path: str
    message: str


def validate_graph(steps: Sequence[Step]) -> list[GraphProblem]:
    """Every problem of the graph (empty when valid): duplicate ids, unknown targets, cycles, unreachable steps.

    The first step is the entry. Cycles are reported once each with the loop spelled out
    (``a -> b -> a``); unreachable steps only when no other problem hides why they are unreachable.
    """
    problems: list[GraphProblem] = []
    if not steps:
        return [GraphProblem("steps", "a sequence needs at least one step")]
    if len(steps) > MAX_STEPS:
        problems.append(GraphProblem("steps", f"a sequence has at most {MAX_STEPS} steps"))
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.id in index:
            first = index[step.id]
            problems.append(GraphProblem(f"steps[{i}].id", f"duplicate step id {step.id!r} (also steps[{first}])"))
        else:
            index[step.id] = i
    edges: dict[str, list[str]] = {}
    for i, step in enumerate(steps):
        if index.get(step.id) != i:
            continue  # a duplicate: its edges are ambiguous, the duplicate itself is already reported
        targets: list[str] = []
        for field, target in successors(step):
            if target not in index:
                problems.append(GraphProblem(f"steps[{i}].{field}", f"unknown step {target!r}"))
            else:
                targets.append(target)
        edges[step.id] = targets

    for cycle in _cycles(steps[0].id, list(index), edges):
        start = cycle[0]
        problems.append(GraphProblem(f"steps[{index[start]}]", "cycle: " + " -> ".join([*cycle, start])))

    reachable = _reachable(steps[0].id, edges)
    if not any(p.message.startswith("unknown step") for p in problems):
        for step_id, i in index.items():
            if step_id not in reachable:
                problems.append(GraphProblem(f"steps[{i}]", f"step {step_id!r} is unreachable from the first step"))
    return problems


def _reachable(entry: str, edges: dict[str, list[str]]) -> set[str]:
    seen = {entry}
    stack = [entry]
    while stack:
        for target in edges.get(stack.pop(), []):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _cycles(entry: str, order: list[str], edges: dict[str, list[str]]) -> Iterator[list[str]]:
    """One cycle per back edge found by an iterative depth-first search (entry first, then the rest)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(order, white)
    for root in [entry, *order]:
        if colour[root] != white:
            continue
        path: list[str] = [root]
        colour[root] = grey
        iterators = [iter(edges.get(root, []))]
        while iterators:
            target = next(iterators[-1], None)
            if target is None:
                colour[path.pop()] = black
                iterators.pop()
                continue
            if colour[target] == grey:
                yield path[path.index(target):]
            elif colour[target] == white:
                colour[target] = grey
                path.append(target)
                iterators.append(iter(edges.get(target, [])))


class SequenceDefinition(_Frozen):
    """A validated step graph, as frozen in a sequence version."""

    steps: tuple[Step, ...] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _valid_graph(self) -> SequenceDefinition:
        problems = validate_graph(self.steps)
        if problems:
            raise ValueError("; ".join(f"{p.path}: {p.message}" for p in problems))
        return self

    @property
    def entry(self) -> str:
        """Id of the first step."""
        return self.steps[0].id

    def step(self, step_id: str) -> Step:
        """The step with this id (KeyError if there is none)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


# ---- A/B variants -----------------------------------------------------------------------------


def choose_variant(enrollment_key: str, step_id: str, variants: Sequence[MessageVariant]) -> MessageVariant:
    """The variant this enrolment gets at this step, weighted and deterministic.

    A hash of the enrolment and step (not a random draw) so a workflow replay, a retried activity and
    an analytics query all agree on which variant a lead saw.
    """
    if not variants:
        raise ValueError("no variants to choose from")
    total = sum(v.weight for v in variants)
    digest = hashlib.sha256(f"{enrollment_key}:{step_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for variant in variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    raise AssertionError("unreachable: point < total")


# ---- enrolment rules --------------------------------------------------------------------------


class StageFilter(_Frozen):
    """A pipeline, optionally narrowed to some of its statuses (empty = any status of it)."""

    pipeline_id: int
    status_ids: tuple[int, ...] = Field(default=(), max_length=200)

    def matches(self, pipeline_id: int | None, status_id: int | None) -> bool:
        """Whether a lead at (pipeline, status) is inside this filter."""
        if pipeline_id != self.pipeline_id:
            return False
        return not self.status_ids or status_id in self.status_ids


class ReenrollmentPolicy(enum.StrEnum):
    """Whether a lead may enter the same sequence more than once.

    ``once``: never again. ``again_when_not_active``: again once the previous enrolment has finished.
    ``any_time``: always; an enrolment still running is cancelled and the lead starts over.
    """

    once = "once"
    again_when_not_active = "again_when_not_active"
    any_time = "any_time"


class EnrollmentRules(_Frozen):
    """Who may enter a sequence."""

    stages: tuple[StageFilter, ...] = Field(default=(), max_length=50)
    reenrollment: ReenrollmentPolicy = ReenrollmentPolicy.again_when_not_active
    exclusive: bool = False
    cooldown: timedelta | None = None

    @field_validator("cooldown")
    @classmethod
    def _bounded(cls, value: timedelta | None) -> timedelta | None:
        return _bounded_wait(value, "cooldown")


class OtherEnrollment(_Frozen):
    """An active enrolment of the lead in another sequence of the same agent."""

    sequence_id: uuid.UUID
    exclusive: bool


class PriorEnrollments(_Frozen):
    """What the database knows about the lead's enrolments, for :func:`check_enrollment`."""

    active_here: bool = False
    ever_here: bool = False
    active_elsewhere: tuple[OtherEnrollment, ...] = ()


class EnrollmentRefusal(enum.StrEnum):
    """Why a lead was not enrolled."""

    opted_out = "opted_out"
    stage_not_allowed = "stage_not_allowed"
    exclusive_conflict = "exclusive_conflict"
    already_active = "already_active"
    already_enrolled = "already_enrolled"
    cooldown = "cooldown"


class EnrollmentVerdict(_Frozen):
    """Enrol or not; ``restart`` means the lead's running enrolment must be cancelled first."""

    allowed: bool
    reason: EnrollmentRefusal | None = None
    restart: bool = False


def check_enrollment(
    rules: EnrollmentRules,
    lead: LeadFacts,
    prior: PriorEnrollments,
    *,
    exclusive_here: bool,
    last_contacted_at: datetime | None,
    now: datetime,
) -> EnrollmentVerdict:
    """Apply the rules in a fixed order: opt-out, stage filter, exclusivity, re-enrolment, cooldown."""
    if lead.opted_out:
        return EnrollmentVerdict(allowed=False, reason=EnrollmentRefusal.opted_out)
    if rules.stages and not any(f.matches(lead.pipeline_id, lead.status_id) for f in rules.stages):
        return EnrollmentVerdict(allowed=False, reason=EnrollmentRefusal.stage_not_allowed)
    # Exclusivity is symmetric: an exclusive sequence admits no one busy elsewhere, and no one may
    # leave for another sequence while an exclusive one holds them.
    if prior.active_elsewhere and (exclusive_here or any(o.exclusive for o in prior.active_elsewhere)):
        return EnrollmentVerdict(allowed=False, reason=EnrollmentRefusal.exclusive_conflict)
    restart = False
    if rules.reenrollment == ReenrollmentPolicy.once and prior.ever_here:
        reason = EnrollmentRefusal.already_active if prior.active_here else EnrollmentRefusal.already_enrolled
        return EnrollmentVerdict(allowed=False, reason=reason)
    if prior.active_here:
        if rules.reenrollment != ReenrollmentPolicy.any_time:
            return EnrollmentVerdict(allowed=False, reason=EnrollmentRefusal.already_active)
        restart = True
    if rules.cooldown is not None and last_contacted_at is not None and now - last_contacted_at < rules.cooldown:
        return EnrollmentVerdict(allowed=False, reason=EnrollmentRefusal.cooldown)
    return EnrollmentVerdict(allowed=True, restart=restart)


# ---- exit criteria ----------------------------------------------------------------------------


class ExitReason(enum.StrEnum):
    """Why an enrolment stopped before its last step."""

    replied = "replied"
    won = "won"
    lost = "lost"
    stage = "stage"
    opted_out = "opted_out"
    manual = "manual"
    sequence_archived = "sequence_archived"
    reenrolled = "reenrolled"
    lead_deleted = "lead_deleted"


class ExitCriteria(_Frozen):
    """When an enrolment stops early. Opting out and a manual stop always end it."""

    on_reply: bool = True
    on_won: bool = True
    on_lost: bool = True
    stages: tuple[StageFilter, ...] = Field(default=(), max_length=50)


def exit_for_stage(criteria: ExitCriteria, pipeline_id: int | None, status_id: int | None) -> ExitReason | None:
    """The exit a move to (pipeline, status) causes, if any (won/lost are 142/143 in every pipeline)."""
    if status_id == WON_STATUS_ID and criteria.on_won:
        return ExitReason.won
    if status_id == LOST_STATUS_ID and criteria.on_lost:
        return ExitReason.lost
    if any(f.matches(pipeline_id, status_id) for f in criteria.stages):
        return ExitReason.stage
    return None


def exit_for_reply(criteria: ExitCriteria) -> ExitReason | None:
    """A reply ends the enrolment when the criteria say so."""
    return ExitReason.replied if criteria.on_reply else None


def exit_for_opt_out(lead: LeadFacts) -> ExitReason | None:
    """An opted-out lead is never contacted again, whatever the criteria."""
    return ExitReason.opted_out if lead.opted_out else None


# ---- send planning ----------------------------------------------------------------------------


def _next_midnight(zone: ZoneInfo, day: date) -> datetime:
    # ZoneInfo maps a midnight inside a DST gap with fold=0 onto the gap's end, which is when that
    # local day actually begins; a midnight inside a fold takes its first occurrence.
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)


def schedule_send(
    window: SendWindow,
    earliest: datetime,
    *,
    cap: DailyCap | None,
    cap_zone: str,
    used_on: Callable[[date], int],
) -> datetime:
    """First instant ``>= earliest`` inside ``window`` whose day in ``cap_zone`` still has room, in UTC.

    The window is the recipient's (their zone and business hours); the cap counts the sender's days,
    i.e. the agent's organisation zone, which is why this is not ``schedule_with_cap`` (one zone for
    both). When both zones are the same the two agree. A send over the cap moves to the next day with
    room: deferred, never dropped. Raises ``NoSendWindowError`` beyond the search horizon.
    """
    candidate = next_send_time(window, earliest)
    if cap is None:
        return candidate
    zone = ZoneInfo(cap_zone)
    horizon = earliest.astimezone(UTC) + timedelta(days=MAX_SEARCH_DAYS)
    while candidate <= horizon:
        day = candidate.astimezone(zone).date()
        if used_on(day) < cap.limit:
            return candidate
        candidate = next_send_time(window, max(_next_midnight(zone, day), candidate + timedelta(microseconds=1)))
    raise NoSendWindowError(f"no send window with room under the daily cap within {MAX_SEARCH_DAYS} days")


# ---- send windows -----------------------------------------------------------------------------


def send_window_for(
    *,
    org_time_zone: str,
    org_hours: Mapping[str, Any] | None,
    org_holidays: Sequence[str | date],
    override: Mapping[str, Any] | None,
    lead_time_zone: str | None,
) -> SendWindow:
    """The window a lead's sends must fall in.

    Hours and holidays come from the sequence's override when it has them, else the organisation's
    (an organisation that never set hours gets Monday-Friday 09:00-18:00). The zone is the lead's when
    known and valid, else the override's, else the organisation's.
    """
    override = override or {}
    hours_source = override.get("business_hours") if override.get("business_hours") is not None else org_hours
    holidays_source = override.get("holidays") if override.get("holidays") is not None else org_holidays
    holidays = tuple(d if isinstance(d, date) else date.fromisoformat(d) for d in holidays_source or ())
    if hours_source:
        hours = BusinessHours(days=hours_source, holidays=holidays)
    else:
        hours = BusinessHours(days=BusinessHours.default().days, holidays=holidays)
    base_zone = override.get("time_zone") or org_time_zone
    return SendWindow(hours=hours, tz=resolve_time_zone(lead_time_zone, base_zone))


ALWAYS_OPEN: dict[str, list[dict[str, str]]] = {
    str(day): [{"start": "00:00:00", "end": time.max.isoformat()}] for day in range(7)
}
"""Stored business hours meaning "any time of any day" (a sequence that ignores office hours)."""
