"""Notification request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, computed_field

from api.schemas.common import InputModel, ReadModel

MAX_BULK_IDS = 500


class NotificationRead(ReadModel):
    """A notification; ``user_id`` null means it is addressed to everyone in the organisation."""

    id: uuid.UUID
    org_id: uuid.UUID
    user_id: uuid.UUID | None
    kind: str
    title: str
    body: str
    read_at: datetime | None
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def read(self) -> bool:
        """Whether it has been read."""
        return self.read_at is not None


class NotificationUpdate(InputModel):
    """Mark one notification read or unread."""

    read: bool


class MarkAllRead(InputModel):
    """Mark every notification the caller can see read."""

    action: Literal["mark_all_read"]


class MarkRead(InputModel):
    """Mark the listed notifications read."""

    action: Literal["mark_read"]
    ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_BULK_IDS)


class DeleteNotifications(InputModel):
    """Delete the listed notifications."""

    action: Literal["delete"]
    ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_BULK_IDS)


NotificationAction = Annotated[MarkAllRead | MarkRead | DeleteNotifications, Field(discriminator="action")]


class NotificationActionResult(ReadModel):
    """How many notifications the action changed (ids the caller cannot see are not counted)."""

    action: str
    affected: int
