"""Reaching a lead's conversation from any process: signal-with-start of ``conversation/{org}/{lead}``, and the
Kommo clients (API v4 and the amojo chat channel) the conversation activities use.

``deliver_incoming_message`` is what every intake path calls: the chat hook endpoint, and the CRM webhook path
(through ``ConversationActivities.route_incoming_message`` from a workflow).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy

from db.models import KommoConnection
from integrations.crypto import SecretBox
from integrations.kommo.client import AmojoClient, KommoClient
from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from workflows.conversation_models import ConversationInput, ConversationPolicy, IncomingMessage
from workflows.ids import TASK_QUEUE, conversation_id


class ChatNotConfigured(Exception):
    """The organisation has no Kommo chat channel we can send through."""


async def deliver_incoming_message(
    client: Client, settings: Settings, *, org_id: uuid.UUID, lead_id: uuid.UUID, message: IncomingMessage
) -> str:
    """Signal the lead's conversation, starting it if it is not running; returns the workflow id.

    Repeats are harmless: the workflow and the messages table drop a message id they have seen.
    """
    # Imported here: the workflow module imports the activities, which import this module.
    from workflows.conversation import LeadConversationWorkflow

    workflow_id = conversation_id(org_id, lead_id)
    await client.start_workflow(
        LeadConversationWorkflow.run,
        ConversationInput(org_id=org_id, lead_id=lead_id),
        id=workflow_id,
        task_queue=TASK_QUEUE,
        start_signal="incoming_message",
        start_signal_args=[message],
        # A conversation that went idle completed; the next message starts a new run with the same id.
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=run_search_attributes(settings, org_id=org_id, lead_id=lead_id),
        static_summary=f"Conversation with lead {lead_id}",
    )
    return workflow_id


@dataclass(frozen=True)
class ChatChannel:
    """The organisation's amojo channel: a signed client and the account's scope id."""

    client: AmojoClient
    scope_id: str


class KommoClients(Protocol):
    """Where conversation activities get Kommo clients for an organisation (injected, so tests use sandboxes)."""

    async def api(self, org_id: uuid.UUID) -> KommoClient:
        """An API v4 client with a valid token."""
        ...

    async def chat(self, org_id: uuid.UUID) -> ChatChannel:
        """The chat channel; ``ChatNotConfigured`` when the connection has none."""
        ...


def channel_secret(connection: KommoConnection, settings: Settings, box: SecretBox) -> str | None:
    """The channel secret that signs this connection's chat traffic (its own, else the integration's)."""
    if connection.chat_channel_secret_enc:
        return box.decrypt(connection.chat_channel_secret_enc)
    return settings.kommo_chat_channel_secret


class ConnectionKommoClients:
    """``KommoClients`` from the organisation's stored connection.

    API clients come from ``salesflow.kommo.KommoAccess`` (token refresh, shared rate limit). The chat client
    signs with the connection's channel secret; the channel id is the scope id's prefix
    (``{channel_id}_{amojo_id}``) unless the settings name one.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 http: httpx.AsyncClient | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.box = SecretBox(settings.token_encryption_key)
        self.http = http or httpx.AsyncClient()

    async def api(self, org_id: uuid.UUID) -> KommoClient:
        """Through KommoAccess (imported late: it belongs to the Kommo integration)."""
        from salesflow.kommo import KommoAccess

        return await KommoAccess(self.sessions, self.settings, self.box, self.http).client_for(org_id)

    async def chat(self, org_id: uuid.UUID) -> ChatChannel:
        """The amojo client of the organisation's channel."""
        async with self.sessions() as session:
            connection = await session.scalar(select(KommoConnection).where(KommoConnection.org_id == org_id))
        if connection is None or not connection.chat_scope_id:
            raise ChatNotConfigured(f"organization {org_id} has no Kommo chat channel")
        secret = channel_secret(connection, self.settings, self.box)
        if not secret:
            raise ChatNotConfigured(f"organization {org_id} has no chat channel secret")
        channel_id = self.settings.kommo_chat_channel_id or connection.chat_scope_id.split("_", 1)[0]
        client = AmojoClient(self.settings.kommo_amojo_url, channel_id, secret, http=self.http)
        return ChatChannel(client=client, scope_id=connection.chat_scope_id)


def _number(value: object, default: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return min(max(float(value), low), high)


def conversation_policy(settings: Settings, channel_settings: dict[str, object] | None,
                        reply_delay_seconds: int = 0) -> ConversationPolicy:
    """The agent's chat behaviour: its kommo_chat channel ``settings`` over the process defaults.

    Keys: ``approval_mode`` (bool), ``approval_timeout_minutes``, ``approval_timeout_policy`` (send|discard),
    ``handoff_minutes``, ``debounce_seconds`` (else the channel's ``reply_delay_seconds`` when set);
    ``approval_timeout_seconds`` and ``handoff_seconds`` win over the minute keys when given.
    """
    raw = channel_settings or {}
    debounce = float(reply_delay_seconds) if reply_delay_seconds > 0 else settings.conversation_debounce_seconds
    policy = raw.get("approval_timeout_policy")
    if policy not in ("send", "discard"):
        policy = settings.conversation_approval_timeout_policy
    handoff = _number(raw.get("handoff_minutes"), settings.conversation_handoff_minutes, 1, 60 * 24 * 30) * 60
    approval = _number(raw.get("approval_timeout_minutes"), settings.conversation_approval_timeout_minutes, 1,
                       60 * 24 * 7) * 60
    return ConversationPolicy(
        debounce_seconds=_number(raw.get("debounce_seconds"), debounce, 0, 600),
        handoff_seconds=_number(raw.get("handoff_seconds"), handoff, 1, 30 * 86400),
        approval_mode=raw.get("approval_mode") is True,
        approval_timeout_seconds=_number(raw.get("approval_timeout_seconds"), approval, 1, 7 * 86400),
        approval_timeout_policy=policy,
        idle_seconds=settings.conversation_idle_days * 86400.0,
    )
