"""Inputs, signals, updates and query results of LeadConversationWorkflow and the activities it calls.

Pure pydantic, carried by id (org, lead, conversation, message), never ORM rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["kommo_chat", "kommo_crm", "playground"]
MAX_TEXT = 10_000

# ----------------------------------------------------------------------------- workflow messages


class IncomingMessage(BaseModel):
    """Signal ``incoming_message``: one message in the lead's chat, from the lead or from a manager.

    ``message_id`` is Kommo's id of the message: the workflow (and the messages table) drop repeats of it.
    """

    model_config = ConfigDict(frozen=True)

    message_id: str = Field(min_length=1, max_length=200)
    text: str = Field(max_length=MAX_TEXT)
    author: Literal["lead", "manager"] = "lead"
    channel: Channel = "kommo_chat"
    sent_at: datetime | None = None
    author_name: str | None = Field(default=None, max_length=255)
    # amojo: our conversation id (``conversation.client_id``) and the lead's chat user, for replying.
    chat_conversation_id: str | None = Field(default=None, max_length=255)
    chat_client_id: str | None = Field(default=None, max_length=255)


class CarriedState(BaseModel):
    """What a run hands to the next one on continue-as-new: the context, not the history."""

    summary: str = ""
    turns: int = 0
    runs: int = 1
    stage: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    handoff_until: datetime | None = None
    handoff_reason: str | None = None
    to_answer: list[IncomingMessage] = Field(default_factory=list)
    inbox: list[IncomingMessage] = Field(default_factory=list)
    seen_ids: list[str] = Field(default_factory=list)


class ConversationInput(BaseModel):
    """Start input of ``conversation/{org}/{lead}``; overrides win over the agent's and the settings' values."""

    org_id: uuid.UUID
    lead_id: uuid.UUID
    debounce_seconds: float | None = Field(default=None, ge=0, le=600)
    max_turns_per_run: int | None = Field(default=None, ge=1, le=10_000)
    carried: CarriedState | None = None


class HandBack(BaseModel):
    """Signal ``hand_back``: a manager gives the conversation back to the agent before the window ends."""

    user_id: uuid.UUID | None = None
    note: str = Field(default="", max_length=500)


class DraftDecision(BaseModel):
    """Update ``decide_draft``: approve, edit (send ``text`` instead) or reject the pending draft."""

    message_id: uuid.UUID
    decision: Literal["approve", "edit", "reject"]
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    user_id: uuid.UUID | None = None


class DraftOutcome(BaseModel):
    """Result of ``decide_draft``: the decision was accepted; the run sends (or closes) the draft next."""

    message_id: uuid.UUID
    status: Literal["accepted"] = "accepted"
    decision: Literal["approve", "edit", "reject"]
    text: str


class ConversationSnapshot(BaseModel):
    """Query ``snapshot``: the live state of the entity."""

    conversation_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    status: Literal["active", "handoff"]
    handoff_until: datetime | None
    handoff_reason: str | None
    waiting_messages: int
    pending_draft_id: uuid.UUID | None
    turns: int
    turns_this_run: int
    runs: int
    stage: str | None
    fields: dict[str, Any]
    summary: str


# ----------------------------------------------------------------------------- activities


class ConversationPolicy(BaseModel):
    """How the agent behaves in chats: from its kommo_chat channel settings, defaults from the settings."""

    debounce_seconds: float
    handoff_seconds: float
    approval_mode: bool = False
    approval_timeout_seconds: float = 3600
    approval_timeout_policy: Literal["send", "discard"] = "discard"
    idle_seconds: float = 30 * 86400


class OpenConversationInput(BaseModel):
    """Find or create the lead's conversation row and pick its agent."""

    org_id: uuid.UUID
    lead_id: uuid.UUID
    workflow_id: str


class ConversationContext(BaseModel):
    """The conversation row's id and state when a run starts."""

    conversation_id: uuid.UUID
    agent_id: uuid.UUID | None
    agent_active: bool
    policy: ConversationPolicy
    stage: str | None
    fields: dict[str, Any]
    summary: str
    turns: int


class RecordInboundInput(BaseModel):
    """Store received messages (idempotent per message id)."""

    org_id: uuid.UUID
    conversation_id: uuid.UUID
    messages: list[IncomingMessage]


class ReplyInput(BaseModel):
    """Ask the brain for the answer to a burst of lead messages."""

    org_id: uuid.UUID
    conversation_id: uuid.UUID
    texts: list[str]
    message_ids: list[str]
    turn: int
    summary: str = ""
    provider: Literal["playbook", "llm"] | None = None


class CrmUpdates(BaseModel):
    """Kommo writes the brain asked for: custom field values and a status move."""

    fields: dict[int, Any] = Field(default_factory=dict)
    status_id: int | None = None
    pipeline_id: int | None = None

    @property
    def empty(self) -> bool:
        """Nothing to write."""
        return not self.fields and self.status_id is None


class ReplyOutput(BaseModel):
    """The brain's answer and what else should happen; ``text`` empty means "do not answer"."""

    text: str
    skipped: str | None = None
    stage: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    extracted: dict[str, Any] = Field(default_factory=dict)
    handoff_reason: str | None = None
    crm: CrmUpdates = Field(default_factory=CrmUpdates)
    meta: dict[str, Any] = Field(default_factory=dict)
    policy: ConversationPolicy | None = None


class CrmUpdatesInput(BaseModel):
    """Write ``updates`` to the conversation's Kommo lead."""

    org_id: uuid.UUID
    conversation_id: uuid.UUID
    updates: CrmUpdates


class RecordReplyInput(BaseModel):
    """Store the agent's message (idempotent per ``msgid``) as a draft or ready to send."""

    org_id: uuid.UUID
    conversation_id: uuid.UUID
    text: str
    msgid: str
    draft: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)


class SendReplyInput(BaseModel):
    """Deliver a stored agent message to the lead (amojo dedupes ``msgid``)."""

    org_id: uuid.UUID
    message_id: uuid.UUID
    text: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class DraftOutcomeInput(BaseModel):
    """Close a draft that is not sent."""

    org_id: uuid.UUID
    message_id: uuid.UUID
    status: Literal["rejected", "discarded"]
    meta: dict[str, Any] = Field(default_factory=dict)


class HandoffInput(BaseModel):
    """Record that a person takes over (``until`` set) or that the agent resumes (``until`` None)."""

    org_id: uuid.UUID
    conversation_id: uuid.UUID
    reason: str = Field(max_length=500)
    until: datetime | None = None
    key: str = Field(max_length=200, description="Deterministic id of this event, so a retry records it once")


class SaveStateInput(BaseModel):
    """Persist the rolling summary and turn count."""

    org_id: uuid.UUID
    conversation_id: uuid.UUID
    summary: str
    turns: int
    stage: str | None = None


class LeadRepliedInput(BaseModel):
    """Tell the lead's active sequence enrolments that the lead replied."""

    org_id: uuid.UUID
    lead_id: uuid.UUID
    message_id: str
    text: str
    replied_at: datetime


class OptOutInput(BaseModel):
    """The lead asked us to stop writing (``phrase`` in message ``message_id``): mark it, stop its sequences."""

    org_id: uuid.UUID
    lead_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: str
    phrase: str = Field(max_length=100)


class RouteMessageInput(BaseModel):
    """From the CRM webhook path: deliver a ``message[add]`` to the lead's conversation (signal-with-start)."""

    org_id: uuid.UUID
    lead_kommo_id: int
    message: IncomingMessage


class RouteMessageResult(BaseModel):
    """Where it went (``workflow_id`` None: no such lead in our mirror)."""

    workflow_id: str | None
    lead_id: uuid.UUID | None


class FollowUpInput(BaseModel):
    """Sequence step ``ai_follow_up``: an outbound message for the lead in the context of its conversation."""

    org_id: uuid.UUID
    lead_id: uuid.UUID
    agent_id: uuid.UUID | None = None
    attempt: int = Field(default=0, ge=0)


class FollowUpOutput(BaseModel):
    """The follow-up text (empty when no agent can write one) and what it was based on."""

    text: str
    stage: str | None = None
    missing_fields: list[str] = Field(default_factory=list)
    agent_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
