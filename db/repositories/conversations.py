"""SQL of conversations, their messages, the chat-hook inbox and the lookups the chat intake needs.

Every query is scoped by ``org_id`` except ``ChatIntakeRepository.connection_by_scope``: a chat hook names only
its amojo scope, which is how we learn the organisation in the first place.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import (
    Agent,
    AgentChannel,
    AgentStatus,
    ChannelType,
    Conversation,
    ConversationChannel,
    ConversationStatus,
    InboxEvent,
    KommoConnection,
    Lead,
    Message,
    MessageStatus,
)
from db.pagination import Page, paginate

CHAT_SOURCE = "kommo_chat"


def lead_key(lead_id: uuid.UUID) -> str:
    """The conversation key of a lead: one conversation per lead."""
    return f"lead:{lead_id}"


class ConversationRepository:
    """Conversations of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def _scoped(self) -> Select[Conversation]:
        return select(Conversation).where(Conversation.org_id == self.org_id)

    async def get(self, conversation_id: uuid.UUID) -> Conversation | None:
        """The conversation if it is this organisation's."""
        row: Conversation | None = await self.session.scalar(self._scoped().where(Conversation.id == conversation_id))
        return row

    async def get_for_lead(self, lead_id: uuid.UUID) -> Conversation | None:
        """The lead's conversation, if it has one."""
        stmt = self._scoped().where(Conversation.key == lead_key(lead_id))
        row: Conversation | None = await self.session.scalar(stmt)
        return row

    async def ensure_for_lead(
        self, lead_id: uuid.UUID, *, agent_id: uuid.UUID | None, channel: ConversationChannel, workflow_id: str
    ) -> Conversation:
        """The lead's conversation, created on first use (race-safe: ON CONFLICT DO NOTHING)."""
        await self.session.execute(
            insert(Conversation)
            .values(
                id=uuid.uuid4(), org_id=self.org_id, key=lead_key(lead_id), lead_id=lead_id, agent_id=agent_id,
                channel=channel, status=ConversationStatus.active, fields={}, summary="", turns=0,
                workflow_id=workflow_id, prompt_tokens=0, completion_tokens=0,
            )
            .on_conflict_do_nothing(index_elements=["org_id", "key"])
        )
        row: Conversation | None = await self.session.scalar(
            self._scoped().where(Conversation.key == lead_key(lead_id)).execution_options(populate_existing=True)
        )
        assert row is not None
        return row

    async def add_playground(self, agent_id: uuid.UUID, user_id: uuid.UUID) -> Conversation:
        """A new playground conversation of ``user_id`` with the agent."""
        conversation_id = uuid.uuid4()
        row = Conversation(
            id=conversation_id, org_id=self.org_id, key=f"playground:{conversation_id}", agent_id=agent_id,
            created_by=user_id, channel=ConversationChannel.playground, status=ConversationStatus.active,
            fields={}, summary="", turns=0, prompt_tokens=0, completion_tokens=0,
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def list(
        self, *, limit: int, cursor: str | None, agent_id: uuid.UUID | None = None,
        status: ConversationStatus | None = None, handoff: bool | None = None,
        last_message_since: datetime | None = None, lead_id: uuid.UUID | None = None,
    ) -> Page[Conversation]:
        """Newest first, filtered."""
        stmt = self._scoped()
        if agent_id is not None:
            stmt = stmt.where(Conversation.agent_id == agent_id)
        if status is not None:
            stmt = stmt.where(Conversation.status == status)
        if handoff is True:
            stmt = stmt.where(Conversation.status == ConversationStatus.handoff)
        elif handoff is False:
            stmt = stmt.where(Conversation.status != ConversationStatus.handoff)
        if last_message_since is not None:
            stmt = stmt.where(Conversation.last_message_at >= last_message_since)
        if lead_id is not None:
            stmt = stmt.where(Conversation.lead_id == lead_id)
        return await paginate(self.session, stmt, Conversation, limit=limit, cursor=cursor)

    async def update(self, conversation_id: uuid.UUID, **values: Any) -> None:
        """Set columns of one conversation."""
        await self.session.execute(
            update(Conversation)
            .where(Conversation.org_id == self.org_id, Conversation.id == conversation_id)
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )

    async def add_usage(self, conversation_id: uuid.UUID, prompt_tokens: int, completion_tokens: int) -> None:
        """Add LLM token usage to the conversation's totals."""
        if not prompt_tokens and not completion_tokens:
            return
        await self.session.execute(
            update(Conversation)
            .where(Conversation.org_id == self.org_id, Conversation.id == conversation_id)
            .values(prompt_tokens=Conversation.prompt_tokens + prompt_tokens,
                    completion_tokens=Conversation.completion_tokens + completion_tokens)
            .execution_options(synchronize_session=False)
        )


class MessageRepository:
    """Messages of one organisation's conversations."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self, message_id: uuid.UUID) -> Message | None:
        """The message if it is this organisation's."""
        return await self.session.scalar(
            select(Message).where(Message.org_id == self.org_id, Message.id == message_id)
        )

    async def add_once(self, conversation_id: uuid.UUID, **values: Any) -> tuple[uuid.UUID, bool]:
        """Insert unless a message with the same ``external_id`` exists; returns (id, created)."""
        new_id = uuid.uuid4()
        now = utcnow()
        stmt = (
            insert(Message)
            .values(id=new_id, org_id=self.org_id, conversation_id=conversation_id, created_at=now, updated_at=now,
                    **{"meta": {}, **values})
            .on_conflict_do_nothing(index_elements=["org_id", "external_id"])
            .returning(Message.id)
        )
        created = await self.session.scalar(stmt)
        if created is not None:
            return created, True
        existing = await self.session.scalar(
            select(Message.id).where(Message.org_id == self.org_id, Message.external_id == values["external_id"])
        )
        assert existing is not None
        return existing, False

    async def list_for_conversation(
        self, conversation_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> Page[Message]:
        """Newest first."""
        stmt = select(Message).where(Message.org_id == self.org_id, Message.conversation_id == conversation_id)
        return await paginate(self.session, stmt, Message, limit=limit, cursor=cursor)

    async def recent(self, conversation_id: uuid.UUID, n: int, *, exclude: list[str] | None = None) -> list[Message]:
        """The last ``n`` exchanged messages (not drafts or system notes), oldest first."""
        stmt = select(Message).where(
            Message.org_id == self.org_id, Message.conversation_id == conversation_id,
            Message.status.in_([MessageStatus.received, MessageStatus.sent, MessageStatus.recorded]),
        )
        if exclude:
            stmt = stmt.where(or_(Message.external_id.is_(None), Message.external_id.not_in(exclude)))
        rows = (await self.session.scalars(stmt.order_by(Message.created_at.desc(), Message.id.desc()).limit(n))).all()
        return list(reversed(rows))

    async def set_status(self, message_id: uuid.UUID, status: MessageStatus, **values: Any) -> None:
        """Move a message along its lifecycle."""
        await self.session.execute(
            update(Message)
            .where(Message.org_id == self.org_id, Message.id == message_id)
            .values(status=status, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )


class ChatIntakeRepository:
    """What the chat intake needs before it knows a conversation: connection, lead, inbox, agent."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def connection_by_scope(self, scope_id: str) -> KommoConnection | None:
        """The connection whose amojo channel scope this is (the hook's only hint of its organisation)."""
        return await self.session.scalar(select(KommoConnection).where(KommoConnection.chat_scope_id == scope_id))

    async def store_hook(self, org_id: uuid.UUID, key: str, event_type: str, payload: dict[str, Any],
                         workflow_id: str | None) -> bool:
        """Insert the hook into the inbox; False when this message id was stored before (a redelivery)."""
        stmt = (
            insert(InboxEvent)
            .values(id=uuid.uuid4(), org_id=org_id, source=CHAT_SOURCE, external_key=key, event_type=event_type,
                    payload=payload, received_at=utcnow(), workflow_id=workflow_id)
            .on_conflict_do_nothing(index_elements=["source", "external_key"])
            .returning(InboxEvent.id)
        )
        return await self.session.scalar(stmt) is not None

    async def record_outcome(self, key: str, outcome: str) -> None:
        """Mark the stored hook processed."""
        now = utcnow()
        await self.session.execute(
            update(InboxEvent)
            .where(InboxEvent.source == CHAT_SOURCE, InboxEvent.external_key == key)
            .values(processed_at=now, outcome=outcome, updated_at=now)
            .execution_options(synchronize_session=False)
        )


class LeadLookup:
    """Leads of one organisation, found by our id, by Kommo id, or by a chat's conversation id."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self, lead_id: uuid.UUID) -> Lead | None:
        """The lead if it is this organisation's."""
        return await self.session.scalar(select(Lead).where(Lead.org_id == self.org_id, Lead.id == lead_id))

    async def by_kommo_id(self, kommo_id: int) -> Lead | None:
        """The lead mirrored from this Kommo id."""
        return await self.session.scalar(select(Lead).where(Lead.org_id == self.org_id, Lead.kommo_id == kommo_id))

    async def for_chat(self, chat_conversation_id: str) -> Lead | None:
        """The lead a chat belongs to: a conversation already bound to it, or an id the chat was opened with.

        We open amojo chats with the lead's id (our UUID, or ``lead-<kommo id>``) as the conversation id.
        """
        bound = await self.session.scalar(
            select(Lead).join(Conversation, and_(Conversation.lead_id == Lead.id, Conversation.org_id == Lead.org_id))
            .where(Conversation.org_id == self.org_id, Conversation.external_conversation_id == chat_conversation_id)
        )
        if bound is not None:
            return bound
        try:
            return await self.get(uuid.UUID(chat_conversation_id))
        except ValueError:
            pass
        raw = chat_conversation_id.removeprefix("lead-")
        if raw.isdigit() and len(raw) < 19:
            return await self.by_kommo_id(int(raw))
        return None

    async def agent_for(self, lead: Lead) -> Agent | None:
        """The lead's own agent if live, else the organisation's oldest active agent with chats enabled."""
        if lead.agent_id is not None:
            own = await self.session.scalar(
                select(Agent).where(Agent.org_id == self.org_id, Agent.id == lead.agent_id, Agent.deleted_at.is_(None))
            )
            if own is not None:
                return own
        chat_agents = (
            select(AgentChannel.agent_id)
            .where(AgentChannel.org_id == self.org_id, AgentChannel.channel == ChannelType.kommo_chat,
                   AgentChannel.enabled.is_(True))
        )
        base = select(Agent).where(Agent.org_id == self.org_id, Agent.deleted_at.is_(None),
                                   Agent.status == AgentStatus.active).order_by(Agent.created_at, Agent.id)
        return await self.session.scalar(base.where(Agent.id.in_(chat_agents))) or await self.session.scalar(base)

    async def chat_channel(self, agent_id: uuid.UUID) -> AgentChannel | None:
        """The agent's kommo_chat channel settings, if configured."""
        return await self.session.scalar(
            select(AgentChannel).where(AgentChannel.org_id == self.org_id, AgentChannel.agent_id == agent_id,
                                       AgentChannel.channel == ChannelType.kommo_chat)
        )


async def live_enrollment_workflow_ids(session: AsyncSession, org_id: uuid.UUID, lead_id: uuid.UUID) -> list[str]:
    """Workflow ids of the lead's live sequence enrolments (pending, active, paused)."""
    from db.models.sequences import LIVE_ENROLLMENT_STATUSES, Enrollment

    stmt = select(Enrollment.workflow_id).where(
        Enrollment.org_id == org_id, Enrollment.lead_id == lead_id, Enrollment.status.in_(LIVE_ENROLLMENT_STATUSES)
    )
    return list((await session.scalars(stmt)).all())
