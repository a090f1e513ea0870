"""Side effects of a lead's conversation: our database, the Kommo chat channel, and the sequences it touches."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.errors import to_application_error
from activities.sequences import chat_address
from activities.webhooks import start_deliveries
from db.base import utcnow
from db.models import (
    ConversationChannel,
    ConversationStatus,
    MessageAuthor,
    MessageDirection,
    MessageStatus,
)
from db.repositories.content import NotificationRepository
from db.repositories.conversations import (
    ConversationRepository,
    LeadLookup,
    MessageRepository,
    live_enrollment_workflow_ids,
)
from db.repositories.sequences import SequenceContextRepository
from db.repositories.webhooks import WebhookRepository
from integrations.kommo.errors import KommoError
from integrations.kommo.models import ChatParticipant
from salesflow.conversations import ChatNotConfigured, KommoClients, conversation_policy, deliver_incoming_message
from salesflow.settings import Settings
from workflows.conversation_models import (
    ConversationContext,
    DraftOutcomeInput,
    HandoffInput,
    LeadRepliedInput,
    OpenConversationInput,
    OptOutInput,
    RecordInboundInput,
    RecordReplyInput,
    RouteMessageInput,
    RouteMessageResult,
    SaveStateInput,
    SendReplyInput,
)
from workflows.sequence_models import LeadOptedOut, LeadReplied


class ConversationActivities:
    """Conversation rows and messages, delivery through amojo, and hand-offs to other workflows."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, kommo: KommoClients,
        temporal: Client | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.kommo = kommo
        self.temporal = temporal

    @activity.defn
    async def open_conversation(self, data: OpenConversationInput) -> ConversationContext:
        """Find or create the lead's conversation, pick its agent and read the agent's chat policy."""
        async with self.sessions() as session:
            lookup = LeadLookup(session, data.org_id)
            lead = await lookup.get(data.lead_id)
            if lead is None:
                raise ApplicationError(f"lead {data.lead_id} not found", non_retryable=True)
            agent = await lookup.agent_for(lead)
            repo = ConversationRepository(session, data.org_id)
            conversation = await repo.ensure_for_lead(
                lead.id, agent_id=agent.id if agent else None, channel=ConversationChannel.kommo_chat,
                workflow_id=data.workflow_id,
            )
            if agent is not None and conversation.agent_id != agent.id:
                await repo.update(conversation.id, agent_id=agent.id)
            channel = await lookup.chat_channel(agent.id) if agent else None
            policy = conversation_policy(
                self.settings, channel.settings if channel else None, channel.reply_delay_seconds if channel else 0
            )
            context = ConversationContext(
                conversation_id=conversation.id, agent_id=agent.id if agent else None,
                agent_active=agent is not None and agent.status.value == "active", policy=policy,
                stage=conversation.stage, fields=dict(conversation.fields), summary=conversation.summary,
                turns=conversation.turns,
            )
            await session.commit()
        return context

    @activity.defn
    async def record_inbound(self, data: RecordInboundInput) -> list[str]:
        """Store received messages once each; returns the ids of those that were new."""
        created: list[str] = []
        async with self.sessions() as session:
            repo = ConversationRepository(session, data.org_id)
            messages = MessageRepository(session, data.org_id)
            changes: dict[str, object] = {}
            for message in data.messages:
                _, new = await messages.add_once(
                    data.conversation_id, direction=MessageDirection.inbound,
                    author=MessageAuthor.lead if message.author == "lead" else MessageAuthor.manager,
                    channel=ConversationChannel(message.channel), status=MessageStatus.received,
                    text=message.text, external_id=message.message_id,
                    meta={"author_name": message.author_name} if message.author_name else {},
                )
                if new:
                    created.append(message.message_id)
                if message.chat_conversation_id:
                    changes["external_conversation_id"] = message.chat_conversation_id
                if message.author == "lead" and message.chat_client_id:
                    changes["external_client_id"] = message.chat_client_id
                    if message.author_name:
                        changes["external_client_name"] = message.author_name[:255]
            now = utcnow()
            await repo.update(data.conversation_id, last_message_at=now, **changes)
            await self._note_lead_reply(session, data, now)
            await session.commit()
        return created

    async def _note_lead_reply(self, session: AsyncSession, data: RecordInboundInput, now: datetime) -> None:
        # The trigger clock compares this with last_contacted_at to tell an unanswered message. The
        # message's own time is used, not its arrival: a reply written before our message but delivered
        # after it did not answer it. Never backwards, so a late redelivery cannot reopen a silence.
        written_at = [
            # A clock ahead of ours must not date a reply in the future (it would hide later silences).
            min(m.sent_at, now) if m.sent_at is not None and m.sent_at.tzinfo is not None else now
            for m in data.messages if m.author == "lead"
        ]
        if not written_at:
            return
        latest = max(written_at)
        conversation = await ConversationRepository(session, data.org_id).get(data.conversation_id)
        if conversation is None or conversation.lead_id is None:
            return
        lead = await SequenceContextRepository(session, data.org_id).lead(conversation.lead_id, for_update=True)
        if lead is not None and (lead.last_replied_at is None or lead.last_replied_at < latest):
            lead.last_replied_at = latest

    @activity.defn
    async def record_reply(self, data: RecordReplyInput) -> str:
        """Store the agent's message (a draft awaiting approval, or approved to send); once per msgid."""
        async with self.sessions() as session:
            conversation = await ConversationRepository(session, data.org_id).get(data.conversation_id)
            if conversation is None:
                raise ApplicationError(f"conversation {data.conversation_id} not found", non_retryable=True)
            message_id, created = await MessageRepository(session, data.org_id).add_once(
                conversation.id, direction=MessageDirection.outbound, author=MessageAuthor.agent,
                channel=conversation.channel,
                status=MessageStatus.pending_approval if data.draft else MessageStatus.approved,
                text=data.text, external_id=data.msgid, meta=data.meta,
            )
            if created:
                repo = ConversationRepository(session, data.org_id)
                await repo.add_usage(conversation.id, int(data.meta.get("prompt_tokens") or 0),
                                     int(data.meta.get("completion_tokens") or 0))
                await repo.update(conversation.id, last_message_at=utcnow())
            await session.commit()
        return str(message_id)

    @activity.defn
    async def send_reply(self, data: SendReplyInput) -> str:
        """Deliver an agent message through the Kommo chat (msgid = our idempotency key); returns its status."""
        async with self.sessions() as session:
            messages = MessageRepository(session, data.org_id)
            message = await messages.get(data.message_id)
            if message is None:
                raise ApplicationError(f"message {data.message_id} not found", non_retryable=True)
            if message.status == MessageStatus.sent:
                return message.status.value
            conversation = await ConversationRepository(session, data.org_id).get(message.conversation_id)
            assert conversation is not None
            text = data.text if data.text is not None else message.text
            meta = {**message.meta, **data.meta}
            if text != message.text:
                meta["draft_text"] = message.text
            status = MessageStatus.recorded
            if conversation.channel != ConversationChannel.playground and conversation.external_conversation_id:
                try:
                    channel = await self.kommo.chat(data.org_id)
                    receiver = ChatParticipant(
                        id=conversation.external_client_id or conversation.external_conversation_id,
                        name=conversation.external_client_name,
                    )
                    result = await channel.client.send_message(
                        channel.scope_id, conversation.external_conversation_id, text, str(message.external_id),
                        receiver=receiver,
                    )
                    meta["amojo_ref_id"] = result.ref_id
                    status = MessageStatus.sent
                except ChatNotConfigured as exc:
                    meta["undelivered"] = str(exc)
                except KommoError as exc:
                    raise to_application_error(exc) from exc
            else:
                meta["undelivered"] = "no chat to deliver to"
            sent_at = utcnow() if status == MessageStatus.sent else None
            await messages.set_status(message.id, status, text=text, meta=meta, sent_at=sent_at)
            if sent_at is not None and conversation.lead_id is not None:
                # Our chat answer is contact too: cooldowns and "no reply for N hours" count from it.
                lead = await SequenceContextRepository(session, data.org_id).lead(conversation.lead_id,
                                                                                   for_update=True)
                if lead is not None and (lead.last_contacted_at is None or lead.last_contacted_at < sent_at):
                    lead.last_contacted_at = sent_at
            await session.commit()
        return status.value

    @activity.defn
    async def close_draft(self, data: DraftOutcomeInput) -> None:
        """Mark a draft that will not be sent (rejected by a person, or discarded on timeout)."""
        async with self.sessions() as session:
            messages = MessageRepository(session, data.org_id)
            message = await messages.get(data.message_id)
            if message is None:
                raise ApplicationError(f"message {data.message_id} not found", non_retryable=True)
            await messages.set_status(message.id, MessageStatus(data.status), meta={**message.meta, **data.meta})
            await session.commit()

    @activity.defn
    async def record_handoff(self, data: HandoffInput) -> None:
        """A person takes over until ``until`` (or, with ``until`` None, the agent resumes); noted in the chat log."""
        async with self.sessions() as session:
            repo = ConversationRepository(session, data.org_id)
            conversation = await repo.get(data.conversation_id)
            if conversation is None:
                raise ApplicationError(f"conversation {data.conversation_id} not found", non_retryable=True)
            if data.until is not None:
                await repo.update(conversation.id, status=ConversationStatus.handoff, handoff_until=data.until,
                                  handoff_reason=data.reason)
                note = f"Handed off to a person until {data.until.isoformat()}: {data.reason}"
            else:
                await repo.update(conversation.id, status=ConversationStatus.active, handoff_until=None)
                note = f"Agent resumed: {data.reason}"
            await MessageRepository(session, data.org_id).add_once(
                conversation.id, direction=MessageDirection.outbound, author=MessageAuthor.system,
                channel=conversation.channel, status=MessageStatus.recorded, text=note, external_id=data.key,
                meta={"event": "handoff" if data.until else "resume", "reason": data.reason},
            )
            deliveries = await WebhookRepository(session, data.org_id).emit(
                "conversation.handoff" if data.until else "conversation.resumed", data.key,
                {"conversation_id": str(conversation.id), "lead_id": str(conversation.lead_id) if conversation.lead_id
                 else None, "reason": data.reason, "until": data.until.isoformat() if data.until else None})
            await session.commit()
        await start_deliveries(activity.client(), data.org_id, deliveries)

    @activity.defn
    async def save_state(self, data: SaveStateInput) -> None:
        """Persist the rolling summary, turn count and stage."""
        async with self.sessions() as session:
            values: dict[str, object] = {"summary": data.summary, "turns": data.turns}
            if data.stage is not None:
                values["stage"] = data.stage
            await ConversationRepository(session, data.org_id).update(data.conversation_id, **values)
            await session.commit()

    @activity.defn
    async def signal_lead_replied(self, data: LeadRepliedInput) -> int:
        """Signal ``lead_replied`` to the lead's active sequence enrolments; returns how many were signalled."""
        return await self._signal_enrollments(
            data.org_id, data.lead_id, "lead_replied",
            LeadReplied(text=data.text[:4096], message_id=data.message_id[:255]),
        )

    @activity.defn
    async def opt_out_lead(self, data: OptOutInput) -> int:
        """The lead asked us to stop: mark it opted out, note it in the chat, tell the org and stop its sequences.

        Returns how many enrolments were told. Every write is keyed by the message, so a retry adds nothing.
        """
        async with self.sessions() as session:
            lead = await SequenceContextRepository(session, data.org_id).lead(data.lead_id, for_update=True)
            if lead is None:
                return 0
            lead.opted_out = True
            conversation = await ConversationRepository(session, data.org_id).get(data.conversation_id)
            if conversation is not None:
                await MessageRepository(session, data.org_id).add_once(
                    conversation.id, direction=MessageDirection.outbound, author=MessageAuthor.system,
                    channel=conversation.channel, status=MessageStatus.recorded,
                    text=f'The lead opted out ("{data.phrase}"): sequences stopped, no further outreach.',
                    external_id=f"opt-out:{data.message_id}"[:255], meta={"event": "opt_out", "phrase": data.phrase},
                )
            await NotificationRepository(session, data.org_id).create_once(
                kind="opt_out", title=f"{lead.contact_name or lead.name or 'A lead'} opted out"[:300],
                body=f'They wrote "{data.phrase}". Their sequences are stopped and they will not be contacted again.',
                user_id=None, dedupe_key=f"opt-out:{data.lead_id}:{data.message_id}"[:255],
            )
            # Queued with the change itself, so an integrator's CRM or suppression list cannot miss it.
            deliveries = await WebhookRepository(session, data.org_id).emit(
                "lead.opted_out", f"opt-out:{data.lead_id}:{data.message_id}"[:200],
                {"lead_id": str(lead.id), "kommo_lead_id": lead.kommo_id, "phrase": data.phrase})
            await session.commit()
        await start_deliveries(activity.client(), data.org_id, deliveries)
        return await self._signal_enrollments(data.org_id, data.lead_id, "lead_opted_out",
                                              LeadOptedOut(reason=f"the lead wrote {data.phrase!r}"))

    async def _signal_enrollments(self, org_id: uuid.UUID, lead_id: uuid.UUID, signal: str, payload: object) -> int:
        """Signal the lead's live enrolments (read from the enrolments table); returns how many were reached."""
        async with self.sessions() as session:
            ids = await live_enrollment_workflow_ids(session, org_id, lead_id)
        if not ids:
            return 0
        if self.temporal is None:
            raise ApplicationError("no Temporal client to signal enrolments with", non_retryable=True)
        signalled = 0
        for workflow_id in ids:
            try:
                # By name (SequenceEnrollmentWorkflow's signals): importing the workflow here would be a cycle.
                await self.temporal.get_workflow_handle(workflow_id).signal(signal, payload)
                signalled += 1
            except RPCError as exc:
                # A run that ended after the row was read (or never started) has nobody to tell.
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        return signalled

    @activity.defn
    async def route_incoming_message(self, data: RouteMessageInput) -> RouteMessageResult:
        """For the CRM webhook path (``message[add]``): deliver the message to the lead's conversation."""
        async with self.sessions() as session:
            lead = await LeadLookup(session, data.org_id).by_kommo_id(data.lead_kommo_id)
            conversation = await ConversationRepository(session, data.org_id).get_for_lead(lead.id) if lead else None
        if lead is None:
            return RouteMessageResult(workflow_id=None, lead_id=None)
        if self.temporal is None:
            raise ApplicationError("no Temporal client to route messages with", non_retryable=True)
        message = data.message
        if message.chat_conversation_id is None and (conversation is None or not conversation.external_conversation_id):
            # No chat of ours with this lead yet: answer where the sequences write to it.
            address, receiver = chat_address(lead)
            message = message.model_copy(update={"chat_conversation_id": address, "chat_client_id": receiver.id})
        workflow_id = await deliver_incoming_message(
            self.temporal, self.settings, org_id=data.org_id, lead_id=lead.id, message=message
        )
        return RouteMessageResult(workflow_id=workflow_id, lead_id=lead.id)
