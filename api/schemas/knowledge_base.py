"""Knowledge-base category and article request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, field_validator

from api.schemas.common import InputModel, PatchModel, ReadModel
from db.models import ArticleStatus

LANGUAGE_PATTERN = r"^[a-z]{2}(-[A-Z]{2})?$"
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class CategoryCreate(InputModel):
    """A new category; ``parent_id`` nests it under another category of the same organisation."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    parent_id: uuid.UUID | None = None
    position: int = Field(default=0, ge=0, le=1_000_000)


class CategoryUpdate(PatchModel):
    """Partial update; ``"parent_id": null`` moves the category to the top level."""

    nullable: ClassVar[frozenset[str]] = frozenset({"parent_id"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    parent_id: uuid.UUID | None = None
    position: int | None = Field(default=None, ge=0, le=1_000_000)


class CategoryRead(ReadModel):
    """A category as the API shows it."""

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    description: str
    parent_id: uuid.UUID | None
    position: int
    created_at: datetime
    updated_at: datetime


class ArticleCreate(InputModel):
    """A new article (a draft unless a status is given); tags are de-duplicated."""

    title: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=100_000)
    category_id: uuid.UUID | None = None
    language: str = Field(default="en", pattern=LANGUAGE_PATTERN, description="BCP 47, e.g. en, ru, pt-BR")
    status: ArticleStatus = ArticleStatus.draft
    tags: list[Tag] = Field(default_factory=list, max_length=50)

    _tags = field_validator("tags")(_dedupe)


class ArticleUpdate(PatchModel):
    """Partial update; ``"category_id": null`` leaves the article uncategorised."""

    nullable: ClassVar[frozenset[str]] = frozenset({"category_id"})

    title: str | None = Field(default=None, min_length=1, max_length=300)
    body: str | None = Field(default=None, max_length=100_000)
    category_id: uuid.UUID | None = None
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN)
    status: ArticleStatus | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _dedupe(value)


class ArticleRead(ReadModel):
    """An article as the API shows it."""

    id: uuid.UUID
    org_id: uuid.UUID
    title: str
    body: str
    category_id: uuid.UUID | None
    language: str
    status: ArticleStatus
    tags: list[str]
    created_at: datetime
    updated_at: datetime
