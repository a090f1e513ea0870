"""Conversations of agents with leads (and playground tests), and every message of both sides."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, RecordMixin, TenantMixin


def _enum(cls: type[enum.Enum], name: str, length: int = 24) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=length)


class ConversationStatus(enum.StrEnum):
    """``active``: the agent answers; ``handoff``: a person does, until ``handoff_until``; ``closed``."""

    active = "active"
    handoff = "handoff"
    closed = "closed"


class ConversationChannel(enum.StrEnum):
    """Where the lead writes: Kommo chats (amojo), the CRM's message events, or the API playground."""

    kommo_chat = "kommo_chat"
    kommo_crm = "kommo_crm"
    playground = "playground"


class MessageDirection(enum.StrEnum):
    """Towards us (inbound) or towards the lead (outbound)."""

    inbound = "inbound"
    outbound = "outbound"


class MessageAuthor(enum.StrEnum):
    """Who wrote it; ``system`` rows record what happened (handoff, resume, approval outcome)."""

    lead = "lead"
    agent = "agent"
    manager = "manager"
    system = "system"


class MessageStatus(enum.StrEnum):
    """Lifecycle of a message: received; drafted and awaiting approval; sent; or not sent (rejected, discarded)."""

    received = "received"
    pending_approval = "pending_approval"
    approved = "approved"
    sent = "sent"
    rejected = "rejected"
    discarded = "discarded"
    recorded = "recorded"


class Conversation(RecordMixin, TenantMixin, Base):
    """One conversation per lead (``key`` = ``lead:{lead_id}``) or per playground session."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("org_id", "key"),
        Index("ix_conversations_org_created", "org_id", "created_at", "id"),
        Index("ix_conversations_org_agent_status", "org_id", "agent_id", "status"),
        Index("ix_conversations_org_last_message", "org_id", "last_message_at"),
        Index("ix_conversations_org_external", "org_id", "external_conversation_id"),
        Index("ix_conversations_org_lead", "org_id", "lead_id"),
    )

    key: Mapped[str] = mapped_column(String(120))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), default=None)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    channel: Mapped[ConversationChannel] = mapped_column(_enum(ConversationChannel, "conversation_channel"))
    status: Mapped[ConversationStatus] = mapped_column(
        _enum(ConversationStatus, "conversation_status"), default=ConversationStatus.active
    )
    handoff_until: Mapped[datetime | None] = mapped_column(default=None)
    handoff_reason: Mapped[str | None] = mapped_column(Text, default=None)
    stage: Mapped[str | None] = mapped_column(String(32), default=None)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    summary: Mapped[str] = mapped_column(Text, default="")
    turns: Mapped[int] = mapped_column(Integer, default=0)
    workflow_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # amojo: our conversation id (``conversation.client_id`` of hooks) and the lead's chat user.
    external_conversation_id: Mapped[str | None] = mapped_column(String(255), default=None)
    external_client_id: Mapped[str | None] = mapped_column(String(255), default=None)
    external_client_name: Mapped[str | None] = mapped_column(String(255), default=None)
    last_message_at: Mapped[datetime | None] = mapped_column(default=None)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)


class Message(RecordMixin, TenantMixin, Base):
    """One message of a conversation; ``external_id`` (Kommo message id or our msgid) is unique per org."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        Index("ix_messages_org_conversation_created", "org_id", "conversation_id", "created_at", "id"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[MessageDirection] = mapped_column(_enum(MessageDirection, "message_direction", 16))
    author: Mapped[MessageAuthor] = mapped_column(_enum(MessageAuthor, "message_author", 16))
    channel: Mapped[ConversationChannel] = mapped_column(_enum(ConversationChannel, "message_channel"))
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus, "message_status"))
    text: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # What produced an agent message (provider, model, tokens, objection, passages, guardrail fixes, why a
    # handoff happened): the audit trail of the brain.
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
