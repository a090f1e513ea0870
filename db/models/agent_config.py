"""What an agent knows and may do: scripts, objections, knowledge, rules, fields, actions, channels, assets.

Every row belongs to one agent (FK, ``ON DELETE CASCADE``) and carries the agent's ``org_id`` so each
query filters by tenant first. Agents are soft-deleted (see ``AgentService.delete``): their rows here stay
in place for history, but every route reaches them through the parent agent, which then answers 404.
A hard delete of the agent (or of the organisation) removes them through the cascade.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB, REGCONFIG, TSVECTOR
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from db.base import Base, RecordMixin, TenantMixin


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as checked strings, like AgentStatus: adding a member needs no ALTER TYPE.
    return Enum(cls, name=name, native_enum=False, length=32)


class AgentChildMixin(RecordMixin, TenantMixin):
    """A row owned by one agent (and, through it, by one organisation)."""

    @declared_attr
    def agent_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))


class ScriptStage(enum.StrEnum):
    """Where in the conversation a script applies."""

    greeting = "greeting"
    qualification = "qualification"
    presentation = "presentation"
    objection_handling = "objection_handling"
    closing = "closing"
    follow_up = "follow_up"
    custom = "custom"


class AgentScript(AgentChildMixin, Base):
    """One conversation stage: the messages the agent leans on there, in ``position`` order."""

    __tablename__ = "agent_scripts"
    __table_args__ = (
        Index("ix_agent_scripts_org_agent_position", "org_id", "agent_id", "position", "created_at", "id"),
    )

    stage: Mapped[ScriptStage] = mapped_column(_enum(ScriptStage, "script_stage"))
    name: Mapped[str] = mapped_column(String(200))
    messages: Mapped[list[str]] = mapped_column(JSONB, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class AgentObjection(AgentChildMixin, Base):
    """A typical objection of a lead and the answer the agent gives to it."""

    __tablename__ = "agent_objections"
    __table_args__ = (Index("ix_agent_objections_org_agent_created", "org_id", "agent_id", "created_at", "id"),)

    objection: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    trigger_phrases: Mapped[list[str]] = mapped_column(JSONB, default=list)
    category: Mapped[str] = mapped_column(String(64), default="general")


class KnowledgeKind(enum.StrEnum):
    """Shapes of knowledge: free text, a question with its answer, a titled document."""

    text = "text"
    faq = "faq"
    document = "document"


# Weighted so a hit in a title or question outranks one in a long body.
_SEARCH_VECTOR = (
    "setweight(to_tsvector(ts_config, coalesce(title, '') || ' ' || coalesce(question, '')), 'A') || "
    "setweight(to_tsvector(ts_config, coalesce(content, '') || ' ' || coalesce(answer, '')), 'B')"
)


class KnowledgeEntry(AgentChildMixin, Base):
    """A piece of knowledge the agent may quote, full-text searchable in the agent's language.

    ``ts_config`` is the text-search configuration (english, russian, ..., simple) picked from the agent's
    language when the row is written; ``search_vector`` is generated from it by PostgreSQL, so it can
    never drift from the text. (``to_tsvector(regconfig, text)`` is immutable, hence allowed there.)
    """

    __tablename__ = "agent_knowledge_entries"
    __table_args__ = (
        Index("ix_agent_knowledge_entries_org_agent_created", "org_id", "agent_id", "created_at", "id"),
        Index("ix_agent_knowledge_entries_search", "search_vector", postgresql_using="gin"),
    )

    kind: Mapped[KnowledgeKind] = mapped_column(_enum(KnowledgeKind, "knowledge_kind"))
    title: Mapped[str | None] = mapped_column(String(300), default=None)
    content: Mapped[str | None] = mapped_column(Text, default=None)
    question: Mapped[str | None] = mapped_column(Text, default=None)
    answer: Mapped[str | None] = mapped_column(Text, default=None)
    tags: Mapped[list[str]] = mapped_column(JSONB, default=list)
    ts_config: Mapped[str] = mapped_column(REGCONFIG, default="simple")
    search_vector: Mapped[Any] = mapped_column(TSVECTOR, Computed(_SEARCH_VECTOR, persisted=True))


class RuleKind(enum.StrEnum):
    """Guardrails and behaviour rules the agent must follow."""

    forbid_topic = "forbid_topic"
    require_phrase = "require_phrase"
    max_length = "max_length"
    handoff_when = "handoff_when"
    custom = "custom"


class AgentRule(AgentChildMixin, Base):
    """One rule of the agent's ordered rule list."""

    __tablename__ = "agent_rules"
    __table_args__ = (
        Index("ix_agent_rules_org_agent_position", "org_id", "agent_id", "position", "created_at", "id"),
    )

    kind: Mapped[RuleKind] = mapped_column(_enum(RuleKind, "rule_kind"))
    instruction: Mapped[str] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class FieldType(enum.StrEnum):
    """Value types of a qualification field."""

    text = "text"
    email = "email"
    phone = "phone"
    number = "number"
    select = "select"
    date = "date"
    boolean = "boolean"


class AgentField(AgentChildMixin, Base):
    """A qualification field the agent collects from the lead, optionally mapped to a Kommo custom field."""

    __tablename__ = "agent_fields"
    __table_args__ = (
        UniqueConstraint("org_id", "agent_id", "key"),
        Index("ix_agent_fields_org_agent_created", "org_id", "agent_id", "created_at", "id"),
    )

    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[FieldType] = mapped_column(_enum(FieldType, "field_type"))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    validation: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    kommo_field_id: Mapped[int | None] = mapped_column(BigInteger, default=None)


class ActionType(enum.StrEnum):
    """What the agent may do in the CRM or the conversation."""

    move_stage = "move_stage"
    add_tag = "add_tag"
    create_task = "create_task"
    set_field = "set_field"
    handoff = "handoff"
    send_asset = "send_asset"
    call_webhook = "call_webhook"


class AgentAction(AgentChildMixin, Base):
    """An action the agent is allowed to take; ``parameters`` were validated for ``type`` by the API."""

    __tablename__ = "agent_actions"
    __table_args__ = (Index("ix_agent_actions_org_agent_created", "org_id", "agent_id", "created_at", "id"),)

    type: Mapped[ActionType] = mapped_column(_enum(ActionType, "action_type"))
    description: Mapped[str] = mapped_column(Text, default="")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class ChannelType(enum.StrEnum):
    """Messaging channels an agent can answer on."""

    whatsapp = "whatsapp"
    telegram = "telegram"
    instagram = "instagram"
    facebook = "facebook"
    viber = "viber"
    email = "email"
    kommo_chat = "kommo_chat"


class AgentChannel(AgentChildMixin, Base):
    """How the agent behaves on one channel; at most one row per (agent, channel)."""

    __tablename__ = "agent_channels"
    __table_args__ = (
        UniqueConstraint("org_id", "agent_id", "channel"),
        Index("ix_agent_channels_org_agent_created", "org_id", "agent_id", "created_at", "id"),
    )

    channel: Mapped[ChannelType] = mapped_column(_enum(ChannelType, "channel_type"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # {"mon": [{"start": "09:00", "end": "18:00"}], ...}; null means "any time".
    working_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    reply_delay_seconds: Mapped[int] = mapped_column(Integer, default=0)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class AssetKind(enum.StrEnum):
    """Images can be served back through /api/images; documents are only sent to leads."""

    image = "image"
    document = "document"


class AgentAsset(AgentChildMixin, Base):
    """An uploaded file the agent can send; bytes live in storage under ``storage_key``, never a client path."""

    __tablename__ = "agent_assets"
    __table_args__ = (
        Index("ix_agent_assets_org_agent_created", "org_id", "agent_id", "created_at", "id"),
        Index("ix_agent_assets_org_kind_created", "org_id", "kind", "created_at", "id"),
    )

    filename: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(200), default="")
    content_type: Mapped[str] = mapped_column(String(100))
    kind: Mapped[AssetKind] = mapped_column(_enum(AssetKind, "asset_kind"))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
