"""The brain's I/O for workflows: answer a lead, write what it learned to Kommo, compose AI follow-ups."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import to_application_error
from db.models import AgentStatus
from db.repositories.conversations import ConversationRepository, LeadLookup, MessageRepository
from integrations.kommo.errors import KommoError
from integrations.llm import LlmError
from salesflow.brain import Brain, provider_from_settings
from salesflow.conversations import KommoClients, conversation_policy
from salesflow.settings import Settings
from workflows.conversation_models import (
    CrmUpdates,
    CrmUpdatesInput,
    FollowUpInput,
    FollowUpOutput,
    ReplyInput,
    ReplyOutput,
)

HISTORY_TURNS = 12


class BrainActivities:
    """Brain activities; the brain (its provider), the Kommo clients and the HTTP pool are injected."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, brain: Brain, kommo: KommoClients,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.brain = brain
        self.kommo = kommo
        self.http = http

    @activity.defn
    async def generate_reply(self, data: ReplyInput) -> ReplyOutput:
        """The agent's answer to a burst of lead messages, from retrieval + playbook (+ LLM), guardrails applied.

        Also stores the fields it extracted and the stage on the conversation, and says which Kommo writes
        follow (``crm``). Empty ``text`` with ``skipped`` when no live agent should answer.
        """
        async with self.sessions() as session:
            repo = ConversationRepository(session, data.org_id)
            conversation = await repo.get(data.conversation_id)
            if conversation is None:
                raise ApplicationError(f"conversation {data.conversation_id} not found", non_retryable=True)
            if conversation.agent_id is None:
                return ReplyOutput(text="", skipped="no_agent")
            agent = await Brain.agent(session, data.org_id, conversation.agent_id)
            if agent is None or agent.status != AgentStatus.active:
                return ReplyOutput(text="", skipped="agent_inactive")
            history = await MessageRepository(session, data.org_id).recent(
                conversation.id, HISTORY_TURNS, exclude=data.message_ids
            )
            provider = provider_from_settings(self.settings, self.http, data.provider) if data.provider else None
            try:
                outcome = await self.brain.answer(
                    session, data.org_id, agent, texts=data.texts, history=history,
                    known_fields=dict(conversation.fields), stage=conversation.stage, turn=data.turn,
                    summary=data.summary, provider=provider,
                )
            except LlmError as exc:
                raise to_application_error(exc) from exc
            reply = outcome.reply
            await repo.update(conversation.id, fields=reply.fields, stage=reply.stage)
            channel = await LeadLookup(session, data.org_id).chat_channel(agent.id)
            policy = conversation_policy(self.settings, channel.settings if channel else None,
                                         channel.reply_delay_seconds if channel else 0)
            await session.commit()
        crm = CrmUpdates()
        if outcome.playbook is not None and conversation.lead_id is not None:
            mapped = {f.key: f.kommo_field_id for f in outcome.playbook.fields if f.kommo_field_id}
            crm.fields = {mapped[k]: v for k, v in reply.extracted.items() if k in mapped}
            move = next((a for a in reply.actions if a.type == "move_stage"), None)
            if move is not None and isinstance(move.parameters.get("status_id"), int):
                crm.status_id = int(move.parameters["status_id"])
                pipeline = move.parameters.get("pipeline_id")
                crm.pipeline_id = int(pipeline) if isinstance(pipeline, int) else None
        return ReplyOutput(
            text=reply.text, stage=reply.stage, fields=reply.fields, extracted=reply.extracted,
            handoff_reason=reply.handoff_reason, crm=crm, meta=outcome.meta(), policy=policy,
        )

    @activity.defn
    async def apply_crm_updates(self, data: CrmUpdatesInput) -> bool:
        """Write extracted fields (mapped to Kommo custom fields) and a stage move to the lead; False if skipped."""
        if data.updates.empty:
            return False
        async with self.sessions() as session:
            conversation = await ConversationRepository(session, data.org_id).get(data.conversation_id)
            lead = await LeadLookup(session, data.org_id).get(conversation.lead_id) if conversation and \
                conversation.lead_id else None
        if lead is None:
            return False
        from salesflow.kommo import KommoNotConnected

        try:
            client = await self.kommo.api(data.org_id)
            values = [{"field_id": field_id, "values": [{"value": value}]}
                      for field_id, value in sorted(data.updates.fields.items())]
            await client.update_lead(
                lead.kommo_id, custom_fields_values=values or None, status_id=data.updates.status_id,
                pipeline_id=data.updates.pipeline_id,
            )
        except KommoNotConnected:
            return False
        except KommoError as exc:
            raise to_application_error(exc) from exc
        return True

    @activity.defn
    async def compose_follow_up(self, data: FollowUpInput) -> FollowUpOutput:
        """An AI follow-up for sequence step ``ai_follow_up``: last conversation, stage and missing fields.

        Returns empty ``text`` when there is no live agent for the lead; sending is the caller's (the
        sequence's rules decide when and whether).
        """
        async with self.sessions() as session:
            lookup = LeadLookup(session, data.org_id)
            lead = await lookup.get(data.lead_id)
            if lead is None:
                raise ApplicationError(f"lead {data.lead_id} not found", non_retryable=True)
            conversation = await ConversationRepository(session, data.org_id).get_for_lead(lead.id)
            agent_id = data.agent_id or (conversation.agent_id if conversation else None)
            agent = await Brain.agent(session, data.org_id, agent_id) if agent_id else await lookup.agent_for(lead)
            if agent is None or agent.status != AgentStatus.active:
                return FollowUpOutput(text="", conversation_id=conversation.id if conversation else None)
            history = await MessageRepository(session, data.org_id).recent(conversation.id, HISTORY_TURNS) \
                if conversation else []
            fields = dict(conversation.fields) if conversation else {}
            outcome = await self.brain.follow_up(
                session, data.org_id, agent, history=history, known_fields=fields,
                stage=conversation.stage if conversation else None, attempt=data.attempt,
                lead_name=(lead.contact_name or "").split(" ")[0] or None,
            )
        playbook = outcome.playbook
        missing = [f.key for f in playbook.fields if f.required and fields.get(f.key) in (None, "")] if playbook else []
        return FollowUpOutput(
            text=outcome.reply.text, stage=conversation.stage if conversation else None, missing_fields=missing,
            agent_id=agent.id, conversation_id=conversation.id if conversation else None,
        )
