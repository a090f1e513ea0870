"""Notifications as one user sees them: their own plus those addressed to the whole organisation.

Read state and deletion live on the notification row, so an organisation-wide notification works like
a shared team inbox: once someone marks it read or deletes it, it is read or gone for everyone.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, NotFound
from api.schemas.notifications import DeleteNotifications, MarkAllRead, MarkRead
from db.base import utcnow
from db.models import Notification
from db.pagination import InvalidCursorError, Page
from db.repositories.content import NotificationRepository


class NotificationService:
    """Everything the API does to notifications, for one user in one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
        self.repo = NotificationRepository(session, org_id)
        self.session = session
        self.user_id = user_id

    async def get(self, notification_id: uuid.UUID) -> Notification:
        """The notification, or 404 (also for another tenant's or another user's)."""
        notification = await self.repo.get_visible(notification_id, self.user_id)
        if notification is None:
            raise NotFound("Notification not found.")
        return notification

    async def list(
        self, *, limit: int, cursor: str | None, unread: bool | None, kind: str | None
    ) -> Page[Notification]:
        """A page of notifications; a foreign or damaged cursor is a 400."""
        try:
            return await self.repo.list_visible(self.user_id, limit=limit, cursor=cursor, unread=unread, kind=kind)
        except InvalidCursorError as exc:
            raise BadRequest("cursor is not valid", errors=[{"field": "query.cursor", "message": str(exc)}]) from exc

    async def set_read(self, notification_id: uuid.UUID, read: bool) -> Notification:
        """Mark read (keeping the first read time) or unread."""
        notification = await self.get(notification_id)
        if read and notification.read_at is None:
            notification.read_at = utcnow()
        elif not read:
            notification.read_at = None
        await self.session.flush()
        return notification

    async def delete(self, notification_id: uuid.UUID) -> None:
        """Delete the notification."""
        await self.repo.delete(await self.get(notification_id))

    async def act(self, action: MarkAllRead | MarkRead | DeleteNotifications) -> int:
        """Apply a bulk action; returns how many notifications changed.

        Ids the caller cannot see (another tenant's, another user's, or already gone) are skipped
        silently: the count tells the client what happened without confirming foreign ids exist.
        """
        if isinstance(action, MarkAllRead):
            return await self.repo.mark_read(self.user_id)
        if isinstance(action, MarkRead):
            return await self.repo.mark_read(self.user_id, action.ids)
        return await self.repo.delete_many(self.user_id, action.ids)
