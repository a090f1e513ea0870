"""Onboarding request and response bodies."""

from __future__ import annotations

from pydantic import Field, field_validator

from api.schemas.agents import AgentRead
from api.schemas.common import InputModel, ReadModel
from domain.onboarding_brief import SUPPORTED_LANGUAGES, BriefTone, is_supported
from workflows.onboarding_models import OnboardingProgress


class OnboardingStatusRead(ReadModel):
    """Progress plus where to see the run in the Temporal UI."""

    workflow_id: str
    temporal_url: str
    progress: OnboardingProgress


class OnboardingAgentCreate(InputModel):
    """The short brief the first agent is drafted from."""

    company: str = Field(min_length=1, max_length=200)
    product: str = Field(min_length=1, max_length=300, description="What you sell, in a few words")
    tone: BriefTone = BriefTone.friendly
    language: str = Field(
        default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$",
        description=f"BCP 47 language; drafts exist for {', '.join(SUPPORTED_LANGUAGES)}",
    )
    agent_name: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("language")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not is_supported(value):
            raise ValueError(f"drafts are available in {', '.join(SUPPORTED_LANGUAGES)}")
        return value


class OnboardingAgentRead(ReadModel):
    """The drafted agent and what it was given."""

    agent: AgentRead
    scripts: int
    objections: int
    rules: int
    onboarding_workflow_id: str
