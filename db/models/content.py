"""Organisation-wide content: knowledge-base categories and articles, email templates, notifications."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    Computed,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, REGCONFIG, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, validates

from db.base import Base, RecordMixin, TenantMixin

# PostgreSQL text-search configuration per article language (the primary subtag of a BCP 47 tag).
# Anything else is indexed with "simple": lower-cased words, no stemming, no stop words.
SEARCH_CONFIGS: dict[str, str] = {
    "en": "english",
    "ru": "russian",
    "es": "spanish",
    "pt": "portuguese",
    "de": "german",
    "fr": "french",
}
FALLBACK_SEARCH_CONFIG = "simple"
ALL_SEARCH_CONFIGS: tuple[str, ...] = (*SEARCH_CONFIGS.values(), FALLBACK_SEARCH_CONFIG)


def search_config_for(language: str) -> str:
    """The regconfig an article in ``language`` (e.g. ``pt-BR``) is indexed and searched with."""
    return SEARCH_CONFIGS.get(language.split("-", 1)[0].lower(), FALLBACK_SEARCH_CONFIG)


class ArticleStatus(enum.StrEnum):
    """Drafts are work in progress; agents only draw on published articles."""

    draft = "draft"
    published = "published"


class KnowledgeCategory(RecordMixin, TenantMixin, Base):
    """A folder of knowledge-base articles; may nest under a parent of the same organisation."""

    __tablename__ = "knowledge_categories"
    __table_args__ = (
        UniqueConstraint("org_id", "name"),
        # Target of the composite foreign keys below: they make a cross-tenant parent or category
        # impossible in the database itself, not only in the service.
        UniqueConstraint("org_id", "id"),
        # No ON DELETE action: deleting a category that still has children fails in the database,
        # which is what makes the service's "refuse unless cascade" rule race-free.
        ForeignKeyConstraint(
            ["org_id", "parent_id"], ["knowledge_categories.org_id", "knowledge_categories.id"],
            name="fk_knowledge_categories_parent",
        ),
        Index("ix_knowledge_categories_org_created", "org_id", "created_at", "id"),
        Index("ix_knowledge_categories_org_parent", "org_id", "parent_id"),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    position: Mapped[int] = mapped_column(Integer, default=0)


class KnowledgeArticle(RecordMixin, TenantMixin, Base):
    """A knowledge-base article, full-text indexed in the configuration of its own language."""

    __tablename__ = "knowledge_articles"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "category_id"], ["knowledge_categories.org_id", "knowledge_categories.id"],
            name="fk_knowledge_articles_category",
        ),
        Index("ix_knowledge_articles_org_created", "org_id", "created_at", "id"),
        Index("ix_knowledge_articles_org_category", "org_id", "category_id"),
        Index("ix_knowledge_articles_search", "search_vector", postgresql_using="gin"),
    )

    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    language: Mapped[str] = mapped_column(String(16), default="en")
    status: Mapped[ArticleStatus] = mapped_column(
        Enum(ArticleStatus, name="article_status", native_enum=False, length=16), default=ArticleStatus.draft
    )
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    # Kept in step with ``language`` by the validator below. A regconfig column (not text) is what lets
    # the generated tsvector call the immutable to_tsvector(regconfig, text).
    search_config: Mapped[str] = mapped_column(REGCONFIG, default="english")
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "setweight(to_tsvector(search_config, coalesce(title, '')), 'A') || "
            "setweight(to_tsvector(search_config, coalesce(body, '')), 'B')",
            persisted=True,
        ),
        deferred=True,
    )

    @validates("language")
    def _sync_search_config(self, _key: str, language: str) -> str:
        self.search_config = search_config_for(language)
        return language


class EmailTemplate(RecordMixin, TenantMixin, Base):
    """A sandboxed Jinja email template addressed by a per-organisation ``key``."""

    __tablename__ = "email_templates"
    __table_args__ = (
        UniqueConstraint("org_id", "key"),
        Index("ix_email_templates_org_created", "org_id", "created_at", "id"),
    )

    name: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(500))
    body_html: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    variables: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)


class Notification(RecordMixin, TenantMixin, Base):
    """Something a user (or, with no user, everyone in the organisation) should know about.

    ``dedupe_key`` is unique per organisation so a retried activity creates one row, not two.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("org_id", "dedupe_key"),
        Index("ix_notifications_org_created", "org_id", "created_at", "id"),
        Index("ix_notifications_org_user", "org_id", "user_id"),
    )

    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    read_at: Mapped[datetime | None] = mapped_column(default=None)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), default=None)
