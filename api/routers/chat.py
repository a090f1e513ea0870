"""/api/chat: conversation history, the agent playground, conversations, approvals, hand-back; Kommo chat hooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Request, status

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, TemporalDep
from api.errors import BadRequest
from api.schemas.chat import (
    ChatHookAck,
    ConversationRead,
    DraftDecisionBody,
    DraftDecisionRead,
    HandBackBody,
    HandBackRead,
    MessageRead,
    PlaygroundMessage,
    PlaygroundReply,
)
from api.schemas.common import Cursor, Limit, ListResponse
from api.services.conversations import ConversationService, conversation_read, receive_chat_hook
from db.models import ConversationStatus

router = APIRouter(prefix="/api/chat", tags=["chat"])
hooks_router = APIRouter(prefix="/api/integrations/kommo/chat", tags=["chat"])

MAX_HOOK_BYTES = 256 * 1024


@router.get("", response_model=ListResponse[MessageRead])
async def list_chat_messages(
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    conversation_id: uuid.UUID | None = None,
    lead_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ListResponse[MessageRead]:
    """History of one conversation (``conversation_id`` or the lead's via ``lead_id``), newest first."""
    page = await ConversationService(session, principal.org_id, settings).history(
        conversation_id=conversation_id, lead_id=lead_id, limit=limit, cursor=cursor
    )
    return ListResponse(items=[MessageRead.model_validate(m) for m in page.items], next_cursor=page.next_cursor)


@router.post("", response_model=PlaygroundReply)
async def send_chat_message(
    body: Annotated[PlaygroundMessage, Body()], principal: CurrentPrincipal, session: SessionDep,
    settings: SettingsDep,
) -> PlaygroundReply:
    """Playground: write to an agent as a test lead and get its reply (the brain runs in this request)."""
    return await ConversationService(session, principal.org_id, settings).playground(principal.user_id, body)


@router.get("/conversations", response_model=ListResponse[ConversationRead])
async def list_conversations(
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    agent_id: uuid.UUID | None = None,
    lead_id: uuid.UUID | None = None,
    status: ConversationStatus | None = None,
    handoff: Annotated[bool | None, Query(description="true: only handed-off; false: only not")] = None,
    since: Annotated[datetime | None, Query(description="last message at or after this time")] = None,
) -> ListResponse[ConversationRead]:
    """Conversations, newest first, filtered by agent, lead, status, handoff and last activity."""
    page = await ConversationService(session, principal.org_id, settings).list(
        limit=limit, cursor=cursor, agent_id=agent_id, status=status, handoff=handoff, since=since, lead_id=lead_id
    )
    return ListResponse(items=[conversation_read(c, settings) for c in page.items], next_cursor=page.next_cursor)


@router.post("/conversations/{id}/draft-decision", response_model=DraftDecisionRead)
async def decide_conversation_draft(
    id: uuid.UUID, body: DraftDecisionBody, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep,
    temporal: TemporalDep,
) -> DraftDecisionRead:
    """Approve, edit or reject the reply an approval-mode agent drafted; the conversation then sends or drops it."""
    return await ConversationService(session, principal.org_id, settings).decide_draft(
        temporal, id, principal.user_id, body
    )


@router.post("/conversations/{id}/hand-back", response_model=HandBackRead, status_code=status.HTTP_202_ACCEPTED)
async def hand_back_conversation(
    id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, temporal: TemporalDep,
    body: Annotated[HandBackBody | None, Body()] = None,
) -> HandBackRead:
    """End a handoff now: the agent answers the lead again."""
    return await ConversationService(session, principal.org_id, settings).hand_back(
        temporal, id, principal.user_id, body.note if body else ""
    )


@hooks_router.post("/hook/{scope_id}", response_model=ChatHookAck)
async def receive_kommo_chat_hook(
    scope_id: Annotated[str, Path(min_length=1, max_length=255)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    x_signature: Annotated[str | None, Header(max_length=128)] = None,
) -> ChatHookAck:
    """Kommo chat hook (amojo): X-Signature = HMAC-SHA1(body, channel secret); stored once, then signalled."""
    body = await request.body()
    if len(body) > MAX_HOOK_BYTES:
        raise BadRequest("The hook body is too large.")
    return await receive_chat_hook(session, temporal, settings, scope_id, body, x_signature)
