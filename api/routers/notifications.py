"""/api/notifications: what the caller should know about (theirs and their organisation's)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from api.deps import CurrentPrincipal, SessionDep
from api.schemas.common import Cursor, Limit, ListResponse
from api.schemas.notifications import (
    NotificationAction,
    NotificationActionResult,
    NotificationRead,
    NotificationUpdate,
)
from api.services.notifications import NotificationService

router = APIRouter(prefix="/api/notifications", tags=["notifications"])


@router.get("", response_model=ListResponse[NotificationRead])
async def list_notifications(
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    unread: Annotated[bool | None, Query(description="true: only unread; false: only read")] = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> ListResponse[NotificationRead]:
    """List the caller's and the organisation-wide notifications, newest first."""
    page = await NotificationService(session, principal.org_id, principal.user_id).list(
        limit=limit, cursor=cursor, unread=unread, kind=kind
    )
    return ListResponse(items=[NotificationRead.model_validate(n) for n in page.items], next_cursor=page.next_cursor)


@router.post("/actions", response_model=NotificationActionResult)
async def apply_notification_action(
    body: Annotated[NotificationAction, Body()], principal: CurrentPrincipal, session: SessionDep
) -> NotificationActionResult:
    """Mark all read, or mark read / delete a list of ids; returns how many changed."""
    affected = await NotificationService(session, principal.org_id, principal.user_id).act(body)
    return NotificationActionResult(action=body.action, affected=affected)


@router.patch("/{id}", response_model=NotificationRead)
async def update_notification(
    id: uuid.UUID, body: NotificationUpdate, principal: CurrentPrincipal, session: SessionDep
) -> NotificationRead:
    """Mark one notification read or unread."""
    notification = await NotificationService(session, principal.org_id, principal.user_id).set_read(id, body.read)
    return NotificationRead.model_validate(notification)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_notification(id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Response:
    """Delete one notification."""
    await NotificationService(session, principal.org_id, principal.user_id).delete(id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
