"""Email template request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_validator, model_validator

from api.schemas.common import InputModel, ReadModel
from domain.templates import MAX_VARIABLES, VARIABLE_NAME

KEY_PATTERN = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
VariableName = Annotated[str, Field(pattern=VARIABLE_NAME.pattern)]


class EmailTemplateWrite(InputModel):
    """A whole template: the body of POST and of PUT (PUT replaces every field, defaults included).

    ``variables`` declares every name the sources may use; using any other name is refused.
    """

    name: str = Field(min_length=1, max_length=200)
    key: str = Field(min_length=1, max_length=100, pattern=KEY_PATTERN, description="Slug, unique per organisation")
    subject: str = Field(min_length=1, max_length=500)
    body_html: str = Field(default="", max_length=200_000)
    body_text: str = Field(default="", max_length=100_000)
    variables: list[VariableName] = Field(default_factory=list, max_length=MAX_VARIABLES)

    @field_validator("variables")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _has_a_body(self) -> EmailTemplateWrite:
        if not self.body_html and not self.body_text:
            raise ValueError("a template needs body_html, body_text or both")
        return self


class EmailPreview(BaseModel):
    """The template rendered with sample values (``<name>`` placeholders unless given)."""

    values: dict[str, str]
    subject: str | None = None
    body_html: str | None = None
    body_text: str | None = None
    error: str | None = Field(default=None, description="Why rendering failed with these values, if it did")


class EmailTemplateRead(ReadModel):
    """A template as the API shows it; ``preview`` is filled when asked for."""

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    key: str
    subject: str
    body_html: str
    body_text: str
    variables: list[str]
    created_at: datetime
    updated_at: datetime
    preview: EmailPreview | None = None
