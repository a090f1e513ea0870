"""Kommo integration state that is ours, not a mirror of Kommo: OAuth states, per-agent links and
pipeline settings, and the shared request budget per Kommo account."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Double, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, RecordMixin, TenantMixin


class KommoOAuthState(RecordMixin, TenantMixin, Base):
    """One OAuth ``state`` handed to Kommo's consent page: bound to an org, short-lived, single use.

    Only its SHA-256 is stored, so a database read cannot be turned into a valid callback.
    """

    __tablename__ = "kommo_oauth_states"
    __table_args__ = (UniqueConstraint("state_hash"),)

    state_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), default=None)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class AgentIntegration(RecordMixin, TenantMixin, Base):
    """An agent's use of the organisation's Kommo connection ("installed" integration)."""

    __tablename__ = "agent_integrations"
    __table_args__ = (
        UniqueConstraint("agent_id", "connection_id"),
        Index("ix_agent_integrations_org_agent", "org_id", "agent_id"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("kommo_connections.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    installed_at: Mapped[datetime]
    last_sync_workflow_id: Mapped[str | None] = mapped_column(String(255), default=None)


class AgentPipelineSettings(RecordMixin, TenantMixin, Base):
    """Which Kommo pipeline and stages an agent works, and where it moves leads (Kommo ids)."""

    __tablename__ = "agent_pipeline_settings"
    __table_args__ = (UniqueConstraint("agent_id"), Index("ix_agent_pipeline_settings_org_agent", "org_id", "agent_id"))

    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    pipeline_kommo_id: Mapped[int] = mapped_column(BigInteger)
    stage_kommo_ids: Mapped[list[int]] = mapped_column(JSONB, default=list)
    qualified_status_kommo_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    handoff_status_kommo_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    lost_status_kommo_id: Mapped[int | None] = mapped_column(BigInteger, default=None)


class KommoRateSlots(Base):
    """Recent request grants of one Kommo account (DB-clock epoch seconds, oldest first).

    Every worker and API replica reserves its request slot here under a row lock, which is what
    keeps the whole deployment under Kommo's per-account limit (an in-process limiter cannot).
    """

    __tablename__ = "kommo_rate_slots"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    grants: Mapped[list[float]] = mapped_column(ARRAY(Double), default=list)
