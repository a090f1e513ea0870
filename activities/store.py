"""Database side effects that workflows need; each activity opens and commits its own session."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.repositories.accounts import OrganizationRepository
from workflows.onboarding_models import OnboardingInput


class StoreActivities:
    """Activities over our own database, with the session factory injected by the worker."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @activity.defn
    async def confirm_organization(self, data: OnboardingInput) -> None:
        """Fail the onboarding for good if the organisation does not exist (it was never committed)."""
        async with self.sessions() as session:
            org = await OrganizationRepository(session).get(data.org_id)
        if org is None:
            raise ApplicationError(f"organization {data.org_id} not found", non_retryable=True)
