"""Dashboard and analytics responses."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field


class PeriodRead(BaseModel):
    """The organisation's local days a report covers (both included) and the zone that cuts them."""

    first_day: date
    last_day: date
    time_zone: str


class StepStats(BaseModel):
    """Messages one step (and, in an A/B test, one variant) sent in the period, and the replies they got."""

    step_id: str
    kind: str = Field(description="send_message or ai_follow_up")
    variant: str | None = Field(description="The A/B variant id; null for a single-text step")
    sent: int
    replied: int
    reply_rate: float | None = Field(description="replied / sent; null when nothing was sent")


class SequenceStats(BaseModel):
    """One sequence over the period: enrolments started in it (by how they stand now) and its sends."""

    sequence_id: uuid.UUID
    name: str
    agent_id: uuid.UUID
    enrolled: int
    live: int = Field(description="pending, active or paused now")
    completed: int
    exited: dict[str, int] = Field(description="Ended by an exit criterion, per reason (replied, won, lost...)")
    cancelled: int
    failed: int
    messages_sent: int
    replied: int
    reply_rate: float | None
    steps: list[StepStats]


class ConversationStats(BaseModel):
    """What the agents' conversations did in the period."""

    conversations: int = Field(description="Conversations with at least one message in the period")
    lead_messages: int
    agent_replies: int = Field(description="Answers the agents delivered")
    manager_messages: int
    drafts: int = Field(description="Answers held for approval (awaiting, rejected or discarded)")
    handoffs: int
    opt_outs: int
    llm_tokens: int


class AnalyticsTotals(BaseModel):
    """Every sequence of the report together."""

    enrolled: int
    messages_sent: int
    replied: int
    reply_rate: float | None


class AnalyticsRead(BaseModel):
    """Sequence performance (per step and A/B variant) and conversation activity over a period."""

    period: PeriodRead
    reply_window_hours: int
    totals: AnalyticsTotals
    sequences: list[SequenceStats]
    conversations: ConversationStats


class DashboardRead(BaseModel):
    """How the organisation stands now, and today's traffic (in its time zone)."""

    time_zone: str
    today: date
    agents: dict[str, int]
    leads: dict[str, int]
    enrollments: dict[str, int]
    conversations: dict[str, int]
    traffic_today: dict[str, int]


class ChartsRead(BaseModel):
    """Daily series over a period: ``series[name][i]`` is the count of ``days[i]``."""

    period: PeriodRead
    days: list[date]
    series: dict[str, list[int]]


class UpdateRead(BaseModel):
    """One event: ``message.lead`` / ``message.agent`` / ``message.manager`` / ``message.system``,
    ``enrollment.started``, ``enrollment.ended`` or ``notification``."""

    at: datetime
    kind: str
    id: uuid.UUID = Field(description="The message, enrolment or notification")
    lead_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    summary: str


class UpdatesRead(BaseModel):
    """Events after the cursor, oldest first; poll again with ``cursor`` after ``poll_after_seconds``."""

    items: list[UpdateRead]
    cursor: str
    poll_after_seconds: int
