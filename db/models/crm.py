"""Our mirror of the Kommo side: the connection, synced pipeline data, leads, and the webhook inbox."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, RecordMixin, TenantMixin


class ConnectionStatus(enum.StrEnum):
    """Whether we can call Kommo for this organisation."""

    pending = "pending"
    connected = "connected"
    needs_reconnect = "needs_reconnect"
    disconnected = "disconnected"


class KommoConnection(RecordMixin, TenantMixin, Base):
    """One Kommo account per organisation. Tokens are encrypted at rest (see integrations.crypto)."""

    __tablename__ = "kommo_connections"
    __table_args__ = (UniqueConstraint("org_id"),)

    account_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    subdomain: Mapped[str | None] = mapped_column(String(128), default=None)
    base_url: Mapped[str | None] = mapped_column(String(255), default=None)
    status: Mapped[ConnectionStatus] = mapped_column(
        Enum(ConnectionStatus, name="connection_status", native_enum=False, length=24),
        default=ConnectionStatus.pending,
    )
    # OAuth: access and refresh token rotate together; a long-lived token has no refresh token.
    access_token_enc: Mapped[str | None] = mapped_column(Text, default=None)
    refresh_token_enc: Mapped[str | None] = mapped_column(Text, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    long_lived: Mapped[bool] = mapped_column(Boolean, default=False)
    # Secret path segment of our CRM webhook URL (Kommo does not sign CRM webhooks).
    webhook_secret: Mapped[str] = mapped_column(String(64), unique=True)
    # amojo (Chats API) channel for sending and verifying chat hooks.
    chat_scope_id: Mapped[str | None] = mapped_column(String(255), default=None)
    chat_channel_secret_enc: Mapped[str | None] = mapped_column(Text, default=None)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    last_synced_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class CrmPipeline(RecordMixin, TenantMixin, Base):
    """A Kommo lead pipeline, as last synced."""

    __tablename__ = "crm_pipelines"
    __table_args__ = (UniqueConstraint("org_id", "kommo_id"),)

    kommo_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255))
    sort: Mapped[int] = mapped_column(Integer, default=0)
    is_main: Mapped[bool] = mapped_column(Boolean, default=False)
    is_archived: Mapped[bool] = mapped_column(Boolean, default=False)


class CrmStatus(RecordMixin, TenantMixin, Base):
    """A stage of a pipeline (142 = won and 143 = lost in every pipeline)."""

    __tablename__ = "crm_statuses"
    __table_args__ = (UniqueConstraint("org_id", "pipeline_kommo_id", "kommo_id"),)

    pipeline_kommo_id: Mapped[int] = mapped_column(BigInteger)
    kommo_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255))
    sort: Mapped[int] = mapped_column(Integer, default=0)
    type: Mapped[int] = mapped_column(Integer, default=0)
    color: Mapped[str | None] = mapped_column(String(16), default=None)


class CrmUser(RecordMixin, TenantMixin, Base):
    """A Kommo user (a manager leads can be handed to)."""

    __tablename__ = "crm_users"
    __table_args__ = (UniqueConstraint("org_id", "kommo_id"),)

    kommo_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), default=None)


class CrmCustomField(RecordMixin, TenantMixin, Base):
    """A custom field of Kommo leads (qualification fields map onto these)."""

    __tablename__ = "crm_custom_fields"
    __table_args__ = (UniqueConstraint("org_id", "kommo_id"),)

    kommo_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    code: Mapped[str | None] = mapped_column(String(128), default=None)
    enums: Mapped[list[Any]] = mapped_column(JSONB, default=list)


class Lead(RecordMixin, TenantMixin, Base):
    """Our mirror of a Kommo lead; unique per (org, Kommo id)."""

    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("org_id", "kommo_id"),
        Index("ix_leads_org_status", "org_id", "pipeline_kommo_id", "status_kommo_id"),
    )

    kommo_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255), default="")
    pipeline_kommo_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    status_kommo_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    responsible_user_kommo_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    price: Mapped[int | None] = mapped_column(BigInteger, default=None)
    contact_name: Mapped[str | None] = mapped_column(String(255), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    phone: Mapped[str | None] = mapped_column(String(64), default=None)
    time_zone: Mapped[str | None] = mapped_column(String(64), default=None)
    tags: Mapped[list[str]] = mapped_column(JSONB, default=list)
    field_values: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    kommo_updated_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_contacted_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the lead last wrote to us; with last_contacted_at it tells whether our last message is unanswered.
    last_replied_at: Mapped[datetime | None] = mapped_column(default=None)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), default=None)


class InboxEvent(RecordMixin, Base):
    """Every inbound webhook lands here first; the unique key drops redeliveries.

    ``org_id`` is nullable because a Stripe event may arrive before we know its organisation.
    """

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("source", "external_key"),
        Index("ix_inbox_events_org_received", "org_id", "received_at"),
    )

    org_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), default=None)
    source: Mapped[str] = mapped_column(String(32))
    external_key: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None] = mapped_column(default=None)
    workflow_id: Mapped[str | None] = mapped_column(String(255), default=None)
    outcome: Mapped[str | None] = mapped_column(Text, default=None)
