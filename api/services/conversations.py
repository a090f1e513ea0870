"""Chat and conversations: history, the playground, approvals, hand-back, and the Kommo chat hook intake.

For other modules: ``deliver_incoming_message`` (re-exported from ``salesflow.conversations``) is the
signal-with-start of ``conversation/{org}/{lead}``; a workflow uses ``ConversationActivities.route_incoming_message``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import BadRequest, Conflict, NotFound, ServiceUnavailable, Unauthorized
from api.schemas.chat import (
    ChatHookAck,
    ConversationRead,
    DraftDecisionBody,
    DraftDecisionRead,
    HandBackRead,
    MessageRead,
    PlaygroundMessage,
    PlaygroundReply,
)
from db.base import utcnow
from db.models import (
    Conversation,
    ConversationChannel,
    ConversationStatus,
    MessageAuthor,
    MessageDirection,
    MessageStatus,
)
from db.pagination import InvalidCursorError, Page
from db.repositories.agents import AgentRepository
from db.repositories.conversations import ChatIntakeRepository, ConversationRepository, LeadLookup, MessageRepository
from integrations.crypto import SecretBox
from integrations.kommo.signing import verify_body_signature
from integrations.llm import LlmError
from salesflow.brain import Brain, provider_from_settings
from salesflow.conversations import channel_secret, deliver_incoming_message
from salesflow.settings import Settings
from workflows.conversation import LeadConversationWorkflow
from workflows.conversation_models import DraftDecision, HandBack, IncomingMessage
from workflows.ids import conversation_id as conversation_workflow_id

log = structlog.get_logger(__name__)

__all__ = ["ConversationService", "deliver_incoming_message", "parse_chat_hook", "receive_chat_hook"]

PLAYGROUND_HISTORY = 12


def conversation_read(row: Conversation, settings: Settings) -> ConversationRead:
    """The API view of a conversation, with a Temporal UI link for lead conversations."""
    read = ConversationRead.model_validate(row)
    if row.workflow_id:
        read.temporal_url = settings.temporal_run_url(row.workflow_id)
    return read


class ConversationService:
    """Requests about an organisation's conversations."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, settings: Settings) -> None:
        self.session = session
        self.org_id = org_id
        self.settings = settings
        self.conversations = ConversationRepository(session, org_id)
        self.messages = MessageRepository(session, org_id)

    async def _conversation(self, conversation_id: uuid.UUID) -> Conversation:
        row = await self.conversations.get(conversation_id)
        if row is None:
            raise NotFound("Conversation not found.")
        return row

    async def history(
        self, *, conversation_id: uuid.UUID | None, lead_id: uuid.UUID | None, limit: int, cursor: str | None
    ) -> Page[Any]:
        """Messages of one conversation (by id, or the lead's), newest first."""
        if (conversation_id is None) == (lead_id is None):
            raise BadRequest("Give exactly one of conversation_id and lead_id.")
        if conversation_id is not None:
            conversation = await self._conversation(conversation_id)
        else:
            assert lead_id is not None
            if await LeadLookup(self.session, self.org_id).get(lead_id) is None:
                raise NotFound("Lead not found.")
            found = await self.conversations.get_for_lead(lead_id)
            if found is None:
                return Page(items=[], next_cursor=None)
            conversation = found
        try:
            return await self.messages.list_for_conversation(conversation.id, limit=limit, cursor=cursor)
        except InvalidCursorError as exc:
            raise BadRequest(str(exc)) from exc

    async def list(
        self, *, limit: int, cursor: str | None, agent_id: uuid.UUID | None, status: ConversationStatus | None,
        handoff: bool | None, since: datetime | None, lead_id: uuid.UUID | None,
    ) -> Page[Conversation]:
        """Conversations newest first; an ``agent_id`` or ``lead_id`` not of this organisation is a 404."""
        if agent_id is not None and await AgentRepository(self.session, self.org_id).get(agent_id) is None:
            raise NotFound("Agent not found.")
        if lead_id is not None and await LeadLookup(self.session, self.org_id).get(lead_id) is None:
            raise NotFound("Lead not found.")
        try:
            return await self.conversations.list(
                limit=limit, cursor=cursor, agent_id=agent_id, status=status, handoff=handoff,
                last_message_since=since, lead_id=lead_id,
            )
        except InvalidCursorError as exc:
            raise BadRequest(str(exc)) from exc

    async def playground(self, user_id: uuid.UUID, body: PlaygroundMessage) -> PlaygroundReply:
        """Run the brain on the message right here and store both sides (no Kommo, no workflow)."""
        agent = await AgentRepository(self.session, self.org_id).get(body.agent_id)
        if agent is None:
            raise NotFound("Agent not found.")
        if body.conversation_id is not None:
            conversation = await self._conversation(body.conversation_id)
            if conversation.channel != ConversationChannel.playground or conversation.agent_id != agent.id:
                raise NotFound("Conversation not found.")
        else:
            conversation = await self.conversations.add_playground(agent.id, user_id)
        inbound_id, _ = await self.messages.add_once(
            conversation.id, direction=MessageDirection.inbound, author=MessageAuthor.lead,
            channel=ConversationChannel.playground, status=MessageStatus.received, text=body.message,
            external_id=f"pg-{uuid.uuid4()}",
        )
        history = await self.messages.recent(conversation.id, PLAYGROUND_HISTORY + 1)
        history = [m for m in history if m.id != inbound_id]
        async with httpx.AsyncClient() as http:
            brain = Brain(provider_from_settings(self.settings, http))
            try:
                outcome = await brain.answer(
                    self.session, self.org_id, agent, texts=[body.message], history=history,
                    known_fields=dict(conversation.fields), stage=conversation.stage, turn=conversation.turns,
                    summary=conversation.summary,
                )
            except LlmError as exc:
                log.warning("playground llm failure", error=str(exc))
                raise ServiceUnavailable("The language model did not answer; try again.") from exc
        reply = outcome.reply
        reply_id, _ = await self.messages.add_once(
            conversation.id, direction=MessageDirection.outbound, author=MessageAuthor.agent,
            channel=ConversationChannel.playground, status=MessageStatus.recorded, text=reply.text,
            external_id=f"pg-{uuid.uuid4()}", meta=outcome.meta(),
        )
        await self.conversations.update(
            conversation.id, fields=reply.fields, stage=reply.stage, turns=conversation.turns + 1,
            last_message_at=utcnow(),
        )
        await self.conversations.add_usage(conversation.id, outcome.prompt_tokens, outcome.completion_tokens)
        inbound = await self.messages.get(inbound_id)
        outbound = await self.messages.get(reply_id)
        assert inbound is not None
        assert outbound is not None
        return PlaygroundReply(
            conversation_id=conversation.id, message=MessageRead.model_validate(inbound),
            reply=MessageRead.model_validate(outbound), stage=reply.stage, fields=reply.fields,
            extracted=reply.extracted, handoff_reason=reply.handoff_reason, provider=outcome.provider,
        )

    async def _lead_workflow(self, conversation_id: uuid.UUID) -> tuple[Conversation, str]:
        conversation = await self._conversation(conversation_id)
        if conversation.lead_id is None:
            raise Conflict("Playground conversations have no workflow.")
        return conversation, conversation.workflow_id or conversation_workflow_id(self.org_id, conversation.lead_id)

    async def decide_draft(
        self, temporal: Client, conversation_id: uuid.UUID, user_id: uuid.UUID, body: DraftDecisionBody
    ) -> DraftDecisionRead:
        """Pass a person's decision on the pending draft to the workflow (update) and return the outcome."""
        conversation, workflow_id = await self._lead_workflow(conversation_id)
        message = await self.messages.get(body.message_id)
        if message is None or message.conversation_id != conversation.id:
            raise NotFound("Message not found.")
        if message.status != MessageStatus.pending_approval:
            raise Conflict("This message is not waiting for approval.")
        handle = temporal.get_workflow_handle_for(LeadConversationWorkflow.run, workflow_id)
        decision = DraftDecision(message_id=message.id, decision=body.decision, text=body.text, user_id=user_id)
        try:
            outcome = await handle.execute_update(LeadConversationWorkflow.decide_draft, decision)
        except WorkflowUpdateFailedError as exc:
            raise Conflict("The draft is no longer waiting for approval.") from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Conflict("The conversation is not running.") from exc
            raise
        return DraftDecisionRead(message_id=outcome.message_id, decision=outcome.decision, text=outcome.text)

    async def hand_back(self, temporal: Client, conversation_id: uuid.UUID, user_id: uuid.UUID,
                        note: str) -> HandBackRead:
        """Signal the workflow that a person hands the lead back to the agent."""
        conversation, workflow_id = await self._lead_workflow(conversation_id)
        if conversation.status != ConversationStatus.handoff:
            raise Conflict("The conversation is not handed off.")
        handle = temporal.get_workflow_handle_for(LeadConversationWorkflow.run, workflow_id)
        try:
            await handle.signal(LeadConversationWorkflow.hand_back, HandBack(user_id=user_id, note=note))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Conflict("The conversation is not running.") from exc
            raise
        return HandBackRead(conversation_id=conversation.id, workflow_id=workflow_id)


# ---- Kommo chat hooks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatHook:
    """The parts of an amojo hook we act on."""

    message: IncomingMessage
    event_type: str


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_chat_hook(payload: Any) -> ChatHook:
    """Read an amojo hook: who wrote (the client = the lead, or a Kommo user = a manager), in which chat, what.

    amojo marks the client with ``client_id``: as the sender when the lead writes, as the receiver when a
    Kommo user writes to the lead. ``conversation.client_id`` is our id of the chat.
    """
    outer = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(outer, dict):
        raise BadRequest("A chat hook carries a message object.")
    conversation = _dict(outer.get("conversation"))
    inner = _dict(outer.get("message"))
    sender = _dict(outer.get("sender"))
    receiver = _dict(outer.get("receiver"))
    message_id = _str(inner.get("id"))
    chat_id = _str(conversation.get("client_id")) or _str(conversation.get("id"))
    if message_id is None or chat_id is None or len(message_id) > 200 or len(chat_id) > 255:
        raise BadRequest("A chat hook names its message id and conversation.")
    text = inner.get("text") if isinstance(inner.get("text"), str) else ""
    if not text:
        text = f"[{_str(inner.get('type')) or 'message'}]"
    from_client = _str(sender.get("client_id"))
    author = "lead" if from_client or not _str(receiver.get("client_id")) else "manager"
    client_id = from_client or _str(receiver.get("client_id"))
    name = _str(sender.get("name"))
    sent_at = outer.get("timestamp")
    if not (isinstance(sent_at, int) and 0 < sent_at < 10**11):
        sent_at = None
    message = IncomingMessage(
        message_id=message_id, text=text[:10_000].replace("\x00", ""), author=author, channel="kommo_chat",
        sent_at=datetime.fromtimestamp(sent_at, tz=utcnow().tzinfo) if sent_at is not None else None,
        author_name=name[:255] if name else None, chat_conversation_id=chat_id,
        chat_client_id=client_id[:255] if client_id else None,
    )
    return ChatHook(message=message, event_type="manager_message" if author == "manager" else "lead_message")


async def receive_chat_hook(
    session: AsyncSession, temporal: Client, settings: Settings, scope_id: str, body: bytes, signature: str | None
) -> ChatHookAck:
    """Verify, store once, hand to the lead's conversation. Nothing is stored unless the signature is valid."""
    intake = ChatIntakeRepository(session)
    connection = await intake.connection_by_scope(scope_id)
    if connection is None:
        raise NotFound("Unknown chat channel.")
    secret = channel_secret(connection, settings, SecretBox(settings.token_encryption_key))
    if not secret or not verify_body_signature(secret, body, signature):
        raise Unauthorized("Invalid chat hook signature.")
    if b"\\u0000" in body or b"\x00" in body:
        # PostgreSQL cannot store NUL in text or jsonb; no genuine chat message carries one.
        raise BadRequest("The hook body contains NUL characters.")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise BadRequest("The hook body is not JSON.") from exc
    hook = parse_chat_hook(payload)
    org_id = connection.org_id
    assert hook.message.chat_conversation_id is not None
    lead = await LeadLookup(session, org_id).for_chat(hook.message.chat_conversation_id)
    workflow_id = conversation_workflow_id(org_id, lead.id) if lead else None
    key = hook.message.message_id
    if not await intake.store_hook(org_id, key, hook.event_type, payload, workflow_id):
        return ChatHookAck(status="duplicate", message_id=key, workflow_id=workflow_id)
    if lead is None:
        await intake.record_outcome(key, "ignored: no lead for this chat")
        return ChatHookAck(status="ignored", message_id=key)
    # The inbox row is durable before the workflow hears of it (amojo sends a hook only once).
    await session.commit()
    try:
        await deliver_incoming_message(temporal, settings, org_id=org_id, lead_id=lead.id, message=hook.message)
    except RPCError as exc:
        await intake.record_outcome(key, f"failed: {exc.message}"[:2000])
        await session.commit()
        raise ServiceUnavailable("The workflow engine is not reachable.") from exc
    await intake.record_outcome(key, "signalled")
    return ChatHookAck(status="accepted", message_id=key, workflow_id=workflow_id)
