"""Sequences (versioned step graphs), enrolments and their step log, send counters, triggers."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, RecordMixin, TenantMixin


def _enum(kind: type[enum.Enum], name: str) -> Enum:
    return Enum(kind, name=name, native_enum=False, length=24)


class SequenceStatus(enum.StrEnum):
    """``active`` accepts enrolments; ``paused`` accepts none (running ones go on); ``archived`` is deleted."""

    active = "active"
    paused = "paused"
    archived = "archived"


class Sequence(RecordMixin, TenantMixin, Base):
    """A follow-up sequence of an agent. The step graph lives in versions; this row points at the current one."""

    __tablename__ = "sequences"
    __table_args__ = (Index("ix_sequences_org_agent_position", "org_id", "agent_id", "position", "id"),)

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[SequenceStatus] = mapped_column(
        _enum(SequenceStatus, "sequence_status"), default=SequenceStatus.active
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    # No FK: versions reference the sequence, and a cycle of FKs buys nothing here.
    current_version_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    # domain.sequences.EnrollmentRules; applied when a lead enters (current rules, not versioned).
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # {"time_zone": str|None, "business_hours": {"0".."6": [{start,end}]}, "holidays": [iso dates]}
    # or null for the organisation's; read at send time, so a change applies to queued sends.
    send_window: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)


class SequenceVersion(RecordMixin, TenantMixin, Base):
    """A frozen step graph and exit criteria; enrolments run the version they started with."""

    __tablename__ = "sequence_versions"
    __table_args__ = (UniqueConstraint("sequence_id", "number"),)

    sequence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    exit_criteria: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class EnrollmentStatus(enum.StrEnum):
    """``pending``: row written, workflow not started yet (bulk fan-out). The first three are "live"."""

    pending = "pending"
    active = "active"
    paused = "paused"
    completed = "completed"
    exited = "exited"
    cancelled = "cancelled"
    failed = "failed"


LIVE_ENROLLMENT_STATUSES = (EnrollmentStatus.pending, EnrollmentStatus.active, EnrollmentStatus.paused)


class Enrollment(RecordMixin, TenantMixin, Base):
    """One lead going through one sequence version; kept current by the workflow's activities."""

    __tablename__ = "enrollments"
    __table_args__ = (
        # At most one live enrolment per (sequence, lead): the database, not a check-then-insert, decides.
        Index(
            "uq_enrollments_live_sequence_lead", "sequence_id", "lead_id", unique=True,
            postgresql_where=text("status IN ('pending', 'active', 'paused')"),
        ),
        Index("ix_enrollments_org_sequence_created", "org_id", "sequence_id", "created_at", "id"),
        Index("ix_enrollments_org_lead_status", "org_id", "lead_id", "status"),
        Index("ix_enrollments_request", "request_id", "id"),
    )

    sequence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequence_versions.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    status: Mapped[EnrollmentStatus] = mapped_column(
        _enum(EnrollmentStatus, "enrollment_status"), default=EnrollmentStatus.pending
    )
    workflow_id: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(32), default="api")
    # The API request (idempotency record) that created it, for bulk fan-out in batches.
    request_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    current_step: Mapped[str | None] = mapped_column(String(64), default=None)
    next_action_at: Mapped[datetime | None] = mapped_column(default=None)
    steps_executed: Mapped[int] = mapped_column(Integer, default=0)
    exit_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class EnrollmentStepLog(RecordMixin, TenantMixin, Base):
    """One executed step. ``step_key`` is the idempotency key of its side effect (also amojo's msgid)."""

    __tablename__ = "enrollment_step_logs"
    __table_args__ = (
        Index("ix_enrollment_step_logs_enrollment", "enrollment_id", "created_at"),
        Index("ix_enrollment_step_logs_org_sent", "org_id", "sent_at"),
    )

    enrollment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(64))
    step_key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(32), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # Sends: the slot booked under the daily cap (day in the organisation's zone) and when it is due.
    scheduled_for: Mapped[datetime | None] = mapped_column(default=None)
    cap_day: Mapped[date | None] = mapped_column(Date, default=None)
    reservation: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(32), default="pending")
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    external_id: Mapped[str | None] = mapped_column(String(255), default=None)


class SendCounter(RecordMixin, TenantMixin, Base):
    """Sends booked per agent, channel and day (organisation zone), for daily caps."""

    __tablename__ = "send_counters"
    __table_args__ = (UniqueConstraint("org_id", "agent_id", "channel", "day"),)

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(Integer, default=0)


class EnrollmentRequest(RecordMixin, TenantMixin, Base):
    """An enrolment POST: its Idempotency-Key, a hash of its body and the answer it got."""

    __tablename__ = "enrollment_requests"
    __table_args__ = (UniqueConstraint("org_id", "idempotency_key"),)

    sequence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    bulk_workflow_id: Mapped[str | None] = mapped_column(String(255), default=None)


class Trigger(RecordMixin, TenantMixin, Base):
    """When an event happens to a lead and the conditions hold, perform the actions (domain.triggers)."""

    __tablename__ = "triggers"
    __table_args__ = (Index("ix_triggers_org_agent_created", "org_id", "agent_id", "created_at", "id"),)

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(32))
    event: Mapped[dict[str, Any]] = mapped_column(JSONB)
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    per_lead_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class TriggerExecution(RecordMixin, TenantMixin, Base):
    """A trigger fired for a lead by one event; the unique key makes a redelivered event fire once."""

    __tablename__ = "trigger_executions"
    __table_args__ = (
        UniqueConstraint("trigger_id", "lead_id", "event_key"),
        Index("ix_trigger_executions_trigger_lead", "trigger_id", "lead_id"),
    )

    trigger_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("triggers.id", ondelete="CASCADE"))
    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
