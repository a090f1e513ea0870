"""Bodies of /api/chat (history, playground), /api/chat/conversations and the Kommo chat hook."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, model_validator

from api.schemas.common import InputModel, ReadModel
from db.models import ConversationChannel, ConversationStatus, MessageAuthor, MessageDirection, MessageStatus


class MessageRead(ReadModel):
    """One message of a conversation (``meta``: how an agent message was produced)."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    direction: MessageDirection
    author: MessageAuthor
    channel: ConversationChannel
    status: MessageStatus
    text: str
    external_id: str | None
    meta: dict[str, Any]
    created_at: datetime
    sent_at: datetime | None


class ConversationRead(ReadModel):
    """A conversation, its state, and where to see its workflow run."""

    id: uuid.UUID
    lead_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    channel: ConversationChannel
    status: ConversationStatus
    handoff_until: datetime | None
    handoff_reason: str | None
    stage: str | None
    fields: dict[str, Any]
    turns: int
    last_message_at: datetime | None
    prompt_tokens: int
    completion_tokens: int
    workflow_id: str | None
    temporal_url: str | None = None
    created_at: datetime


class PlaygroundMessage(InputModel):
    """Talk to an agent as a test lead; give ``conversation_id`` to continue an earlier playground chat."""

    agent_id: uuid.UUID
    message: str = Field(min_length=1, max_length=4000)
    conversation_id: uuid.UUID | None = None


class PlaygroundReply(BaseModel):
    """The agent's answer, what it understood, and both stored messages."""

    conversation_id: uuid.UUID
    message: MessageRead
    reply: MessageRead
    stage: str | None
    fields: dict[str, Any]
    extracted: dict[str, Any]
    handoff_reason: str | None
    provider: str


class DraftDecisionBody(InputModel):
    """Approve the pending draft, send ``text`` instead (edit), or reject it."""

    message_id: uuid.UUID
    decision: Literal["approve", "edit", "reject"]
    text: str | None = Field(default=None, min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _edit_has_text(self) -> Self:
        if self.decision == "edit" and not self.text:
            raise ValueError("an edit needs the text to send")
        return self


class DraftDecisionRead(BaseModel):
    """The decision was accepted by the conversation; the text that will be sent ("" for a rejection)."""

    message_id: uuid.UUID
    status: Literal["accepted"] = "accepted"
    decision: Literal["approve", "edit", "reject"]
    text: str


class HandBackBody(InputModel):
    """Give the conversation back to the agent now."""

    note: str = Field(default="", max_length=500)


class HandBackRead(BaseModel):
    """The hand-back was signalled to the conversation's workflow."""

    conversation_id: uuid.UUID
    workflow_id: str
    status: Literal["accepted"] = "accepted"


class ChatHookAck(BaseModel):
    """Answer to Kommo: stored and handed to the conversation, a duplicate, or ignored (no lead for the chat)."""

    status: Literal["accepted", "duplicate", "ignored"]
    message_id: str
    workflow_id: str | None = None
