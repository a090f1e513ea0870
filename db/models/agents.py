"""The AI sales agent a business configures."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, RecordMixin, TenantMixin


class AgentStatus(enum.StrEnum):
    """Lifecycle of an agent: drafts never touch leads, paused agents keep their configuration."""

    draft = "draft"
    active = "active"
    paused = "paused"


class Agent(RecordMixin, TenantMixin, Base):
    """An AI sales agent; soft-deleted so history (conversations, enrolments) keeps its reference."""

    __tablename__ = "agents"
    __table_args__ = (Index("ix_agents_org_created", "org_id", "created_at", "id"),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[AgentStatus] = mapped_column(
        Enum(AgentStatus, name="agent_status", native_enum=False, length=16), default=AgentStatus.draft
    )
    persona: Mapped[str] = mapped_column(Text, default="")
    tone: Mapped[str] = mapped_column(String(64), default="friendly")
    language: Mapped[str] = mapped_column(String(16), default="en")
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
