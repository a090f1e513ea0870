"""Agent request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from api.schemas.common import InputModel, ReadModel
from db.models import AgentStatus

Language = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$", description="BCP 47 language, e.g. en, ru, pt-BR")


class AgentCreate(InputModel):
    """A new agent starts as a draft unless a status is given."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    persona: str = Field(default="", max_length=10000)
    tone: str = Field(default="friendly", min_length=1, max_length=64)
    language: str = Language
    status: AgentStatus = AgentStatus.draft


class AgentUpdate(InputModel):
    """Partial update; only the fields sent change."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    persona: str | None = Field(default=None, max_length=10000)
    tone: str | None = Field(default=None, min_length=1, max_length=64)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")


class AgentStatusUpdate(InputModel):
    """Move an agent between draft, active and paused."""

    status: AgentStatus


class AgentRead(ReadModel):
    """An agent as the API shows it."""

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    description: str
    persona: str
    tone: str
    language: str
    status: AgentStatus
    created_at: datetime
    updated_at: datetime
