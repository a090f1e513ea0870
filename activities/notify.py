"""In-app notifications that workflows raise (connection expired, lead handed off, sync failed...)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.repositories.accounts import OrganizationRepository, UserRepository
from db.repositories.content import NotificationRepository


class NotifyInput(BaseModel):
    """One notification to create; ``user_id`` None addresses everyone in the organisation.

    Give a ``dedupe_key`` (e.g. ``f"kommo-expired/{org}/{date}"``) whenever a retry or a repeated
    workflow step could ask for the same notification twice: one row per (org, key) is ever created.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: uuid.UUID
    kind: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=10_000)
    user_id: uuid.UUID | None = None
    dedupe_key: str | None = Field(default=None, min_length=1, max_length=200)


class NotifyActivities:
    """Notification side effects, with the session factory injected by the worker."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @activity.defn
    async def notify(self, data: NotifyInput) -> str:
        """Create the notification (once per dedupe key) and return its id.

        A missing organisation, or a user who is not a member of it, can never succeed on retry, so
        both fail the activity for good.
        """
        async with self.sessions() as session:
            if await OrganizationRepository(session).get(data.org_id) is None:
                raise ApplicationError(f"organization {data.org_id} not found", non_retryable=True)
            if data.user_id is not None:
                membership = await UserRepository(session).get_membership(data.org_id, data.user_id)
                if membership is None:
                    raise ApplicationError(
                        f"user {data.user_id} is not a member of organization {data.org_id}", non_retryable=True
                    )
            notification_id = await NotificationRepository(session, data.org_id).create_once(
                kind=data.kind, title=data.title, body=data.body, user_id=data.user_id, dedupe_key=data.dedupe_key
            )
            await session.commit()
        return str(notification_id)
