"""Side effects of SequenceEnrollmentWorkflow: our database, Kommo (CRM actions, chat sends), webhooks.

Idempotency: every step execution has a key (``{workflow_id}:{enrollment}/{step no}/{step id}``) and
one row in ``enrollment_step_logs`` (unique key, written with ON CONFLICT DO NOTHING). A side effect
is skipped when its row says it is done, and a send that crashed between amojo accepting it and our
commit is re-sent with the same key as amojo ``msgid``, which amojo deduplicates. Kommo notes and
tasks have no idempotency key, so a crash in that same window can add a note twice (at-least-once).
"""

from __future__ import annotations

import hashlib
import html
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.models import ConnectionStatus, Enrollment, EnrollmentStatus, KommoConnection, Lead, Role, User
from db.models.sequences import LIVE_ENROLLMENT_STATUSES
from db.repositories.accounts import UserRepository
from db.repositories.content import NotificationRepository
from db.repositories.email import EmailOutboxRepository
from db.repositories.sequences import (
    EnrollmentRepository,
    SendCounterRepository,
    SequenceContextRepository,
    SequenceRepository,
    StepLogRepository,
)
from domain.schedule import DailyCap, NoSendWindowError, SendWindow, next_send_time
from domain.sequence_messages import lead_variables, render_text
from domain.sequences import (
    AddNote,
    AddTag,
    CreateTask,
    ExitCriteria,
    ExitReason,
    MoveStage,
    SequenceDefinition,
    SetField,
    exit_for_stage,
    schedule_send,
)
from domain.templates import TemplateRenderError
from integrations.crypto import SecretBox
from integrations.kommo.client import AmojoClient, KommoClient
from integrations.kommo.errors import KommoError
from integrations.kommo.models import ChatParticipant
from integrations.outbound_webhooks import OutboundWebhookClient, WebhookError
from salesflow.conversations import ChatNotConfigured
from salesflow.kommo import KommoNotConnected
from salesflow.sequence_facts import lead_facts, window_for
from salesflow.settings import Settings
from workflows.sequence_models import (
    BeginInput,
    CrmStepInput,
    EnrollmentPlan,
    LeadFactsInput,
    LeadFactsResult,
    NotifyStepInput,
    ProgressInput,
    ReleaseInput,
    Reservation,
    ReserveInput,
    SendInput,
    SendResult,
    SendStatus,
    StepDone,
    WebhookStepInput,
    WindowInput,
)

DAILY_CAP_SETTING = "daily_send_cap"
"""Key in an agent channel's ``settings`` holding its daily send cap (a positive integer)."""


# ---- Kommo clients ------------------------------------------------------------------------------


class KommoNotConnectedError(Exception):
    """The organisation has no usable Kommo connection (or no chat channel, for sends)."""


@dataclass(frozen=True)
class ChatChannel:
    """An amojo client and the organisation's scope id on our channel."""

    client: AmojoClient
    scope_id: str


class ChatChannelLike(Protocol):
    """What a provider's chat channel must offer (any object with these attributes)."""

    @property
    def client(self) -> AmojoClient:
        """The signed amojo client of our channel."""
        ...

    @property
    def scope_id(self) -> str:
        """The organisation's scope id on our channel."""
        ...


class KommoClientProvider(Protocol):
    """Kommo clients for an organisation. ``salesflow.conversations.ConnectionKommoClients`` (token refresh,
    shared rate limit) satisfies it and is what the worker injects; :class:`StoredConnectionKommo` is the
    dependency-free default."""

    async def api(self, org_id: uuid.UUID) -> KommoClient:
        """An API v4 client with a usable access token."""
        ...

    async def chat(self, org_id: uuid.UUID) -> ChatChannelLike:
        """The chat (amojo) channel to send the organisation's messages through."""
        ...


class StoredConnectionKommo:
    """Default provider: clients built straight from the org's ``KommoConnection`` row (no token refresh)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings, http: httpx.AsyncClient | None = None
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.box = SecretBox(settings.token_encryption_key)
        self.http = http

    async def _connection(self, org_id: uuid.UUID) -> KommoConnection:
        async with self.sessions() as session:
            connection = await SequenceContextRepository(session, org_id).connection()
        if connection is None or connection.status != ConnectionStatus.connected:
            raise KommoNotConnectedError(f"Kommo is not connected for org {org_id}")
        return connection

    async def api(self, org_id: uuid.UUID) -> KommoClient:
        """API client with the stored access token, at the configured base URL or the account's."""
        connection = await self._connection(org_id)
        if connection.access_token_enc is None:
            raise KommoNotConnectedError(f"Kommo connection of org {org_id} has no access token")
        base = self.settings.kommo_api_base_url or connection.base_url or f"https://{connection.subdomain}.kommo.com"
        return KommoClient(base, self.box.decrypt(connection.access_token_enc), http=self.http)

    async def chat(self, org_id: uuid.UUID) -> ChatChannel:
        """amojo client of our channel with the connection's scope id and channel secret."""
        connection = await self._connection(org_id)
        secret = (self.box.decrypt(connection.chat_channel_secret_enc) if connection.chat_channel_secret_enc
                  else self.settings.kommo_chat_channel_secret)
        if not connection.chat_scope_id or not secret:
            raise KommoNotConnectedError(f"no Kommo chat channel is connected for org {org_id}")
        channel_id = self.settings.kommo_chat_channel_id or connection.chat_scope_id.split("_", 1)[0]
        return ChatChannel(AmojoClient(self.settings.kommo_amojo_url, channel_id, secret, http=self.http),
                           connection.chat_scope_id)


def chat_address(lead: Lead) -> tuple[str, ChatParticipant]:
    """Our conversation id for a lead and the lead as the receiver of an outgoing chat message."""
    profile = {k: v for k, v in (("phone", lead.phone), ("email", lead.email)) if v}
    receiver = ChatParticipant(id=f"lead-{lead.kommo_id}", name=lead.contact_name or lead.name or None,
                               profile=profile or None)
    return f"lead-{lead.kommo_id}", receiver


# "Not connected" as each provider spells it: permanent until a human reconnects Kommo.
NOT_CONNECTED: tuple[type[Exception], ...] = (KommoNotConnectedError, KommoNotConnected, ChatNotConfigured)
PROVIDER_ERRORS: tuple[type[Exception], ...] = (KommoError, *NOT_CONNECTED)


def temporal_error(exc: Exception) -> ApplicationError:
    """How Temporal should treat a third-party failure: retry transient ones, fail permanent ones."""
    if isinstance(exc, KommoError):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        return ApplicationError(f"Kommo {type(exc).__name__}: {exc}", type=type(exc).__name__,
                                non_retryable=not exc.retryable, next_retry_delay=delay)
    if isinstance(exc, WebhookError):
        return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not exc.retryable)
    if isinstance(exc, NOT_CONNECTED):
        return ApplicationError(str(exc), type="KommoNotConnected", non_retryable=True)
    return ApplicationError(str(exc), type=type(exc).__name__)


def _attempt_time() -> datetime:
    """The server's time for this attempt (simulated under the time-skipping test server)."""
    return activity.info().current_attempt_scheduled_time.astimezone(UTC)


# ---- the activities -----------------------------------------------------------------------------


class SequenceActivities:
    """Activities of an enrolment, with the database, Kommo and webhook clients injected."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        kommo: KommoClientProvider | None = None,
        webhooks: OutboundWebhookClient | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.kommo: KommoClientProvider = kommo or StoredConnectionKommo(sessions, settings)
        self.webhooks = webhooks or OutboundWebhookClient(allow_private=settings.environment != "production")

    async def _enrollment(self, session: AsyncSession, org_id: uuid.UUID, enrollment_id: uuid.UUID) -> Enrollment:
        enrollment = await EnrollmentRepository(session, org_id).get(enrollment_id)
        if enrollment is None:
            raise ApplicationError(f"enrollment {enrollment_id} not found", type="NotFound", non_retryable=True)
        return enrollment

    # ---- bookkeeping (local activities) -------------------------------------------------------

    @activity.defn(name="sequence.begin")
    async def begin(self, data: BeginInput) -> EnrollmentPlan:
        """Load the enrolment's frozen version; on the first run mark a pending enrolment active."""
        async with self.sessions() as session:
            enrollment = await self._enrollment(session, data.org_id, data.enrollment_id)
            version = await SequenceRepository(session, data.org_id).get_version(enrollment.version_id)
            if version is None:
                raise ApplicationError(f"version {enrollment.version_id} not found", non_retryable=True)
            if data.first_run:
                await EnrollmentRepository(session, data.org_id).begin(enrollment.id)
                await session.commit()
                await session.refresh(enrollment)
            return EnrollmentPlan(
                live=enrollment.status in LIVE_ENROLLMENT_STATUSES,
                version_id=version.id,
                definition=SequenceDefinition.model_validate({"steps": version.steps}),
                exit_criteria=ExitCriteria.model_validate(version.exit_criteria or {}),
            )

    @activity.defn(name="sequence.record_progress")
    async def record_progress(self, data: ProgressInput) -> None:
        """Keep the enrolment row current and write a step-log row once; never revives a finished row."""
        values: dict[str, object] = {}
        if data.status is not None:
            values["status"] = EnrollmentStatus(data.status)
        if data.current_step is not None:
            values["current_step"] = data.current_step
        if data.next_action_at is not None:
            values["next_action_at"] = data.next_action_at
        elif data.clear_next_action:
            values["next_action_at"] = None
        if data.steps_executed is not None:
            values["steps_executed"] = data.steps_executed
        if data.exit_reason is not None:
            values["exit_reason"] = data.exit_reason
        if data.error is not None:
            values["error"] = data.error
        async with self.sessions() as session:
            if data.log is not None:
                await StepLogRepository(session, data.org_id).write_once(
                    data.enrollment_id, data.log.step_id, data.log.step_key, data.log.kind,
                    outcome=data.log.outcome, payload=dict(data.log.payload),
                    scheduled_for=data.next_action_at,
                )
            if values:
                await EnrollmentRepository(session, data.org_id).progress(data.enrollment_id, values,
                                                                          finished=data.finished)
            await session.commit()

    @activity.defn(name="sequence.window_time")
    async def window_time(self, data: WindowInput) -> datetime:
        """First instant ``>= earliest`` inside the lead's send window (no cap: nothing is sent)."""
        async with self.sessions() as session:
            window = await self._window(session, data.org_id, await self._enrollment(session, data.org_id,
                                                                                    data.enrollment_id))
        try:
            return next_send_time(window, data.earliest)
        except NoSendWindowError as exc:
            raise ApplicationError(str(exc), type="NoSendWindow", non_retryable=True) from exc

    async def _window(self, session: AsyncSession, org_id: uuid.UUID, enrollment: Enrollment) -> SendWindow:
        context = SequenceContextRepository(session, org_id)
        org = await context.organization()
        sequence = await SequenceRepository(session, org_id).get(enrollment.sequence_id, include_archived=True)
        lead = await context.lead(enrollment.lead_id)
        if org is None or sequence is None or lead is None:
            raise ApplicationError("organisation, sequence or lead is gone", type="NotFound", non_retryable=True)
        return window_for(org, sequence, lead)

    @activity.defn(name="sequence.reserve_send_slot")
    async def reserve_send_slot(self, data: ReserveInput) -> Reservation:
        """Book the first slot inside the window on a day under the agent's cap for the channel.

        Idempotent per (step key, reservation number): a retry returns the slot already booked; a higher
        number (after a pause) gives the old day back and books again from ``earliest``.
        """
        async with self.sessions() as session:
            enrollment = await self._enrollment(session, data.org_id, data.enrollment_id)
            log = await StepLogRepository(session, data.org_id).claim(
                enrollment.id, data.step_id, data.step_key, data.kind, channel=data.channel,
                reservation=-1, outcome="scheduled",
            )
            if log.reservation == data.reservation and log.scheduled_for is not None:
                await session.commit()
                return Reservation(send_at=log.scheduled_for, cap_day=log.cap_day)
            counters = SendCounterRepository(session, data.org_id)
            if log.cap_day is not None:
                await counters.release(enrollment.agent_id, data.channel, log.cap_day)
            window = await self._window(session, data.org_id, enrollment)
            org = await SequenceContextRepository(session, data.org_id).organization()
            assert org is not None
            cap = await self._cap(session, data.org_id, enrollment.agent_id, data.channel)
            from_day = data.earliest.date() - timedelta(days=1)
            usage = await counters.usage(enrollment.agent_id, data.channel, from_day)
            earliest = data.earliest
            while True:
                try:
                    send_at = schedule_send(window, earliest, cap=cap, cap_zone=org.time_zone,
                                            used_on=lambda day: usage.get(day, 0))
                except NoSendWindowError as exc:
                    raise ApplicationError(str(exc), type="NoSendWindow", non_retryable=True) from exc
                # Caps count the agent's days, i.e. in the organisation's zone (see schedule_send).
                cap_day = send_at.astimezone(ZoneInfo(org.time_zone)).date()
                if await counters.book(enrollment.agent_id, data.channel, cap_day, cap.limit if cap else None):
                    break
                # Someone booked the last slot of that day since we read the usage: it is full.
                usage[cap_day] = cap.limit if cap else 0
                earliest = send_at
            log.scheduled_for, log.cap_day, log.reservation = send_at, cap_day, data.reservation
            log.outcome = "scheduled"
            await EnrollmentRepository(session, data.org_id).progress(
                enrollment.id, {"current_step": data.step_id, "next_action_at": send_at}, finished=False
            )
            await session.commit()
            return Reservation(send_at=send_at, cap_day=cap_day)

    async def _cap(
        self, session: AsyncSession, org_id: uuid.UUID, agent_id: uuid.UUID, channel: str
    ) -> DailyCap | None:
        settings = await SequenceContextRepository(session, org_id).channel_settings(agent_id, channel)
        value = (settings or {}).get(DAILY_CAP_SETTING)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return DailyCap(limit=value)
        return None

    @activity.defn(name="sequence.release_send_slot")
    async def release_send_slot(self, data: ReleaseInput) -> None:
        """A booked send will not happen: give its day back and record why."""
        async with self.sessions() as session:
            logs = StepLogRepository(session, data.org_id)
            log = await logs.claim_existing(data.step_key)
            if log is not None and log.outcome == "scheduled":
                enrollment = await EnrollmentRepository(session, data.org_id).get(log.enrollment_id)
                if log.cap_day is not None and enrollment is not None and log.channel is not None:
                    await SendCounterRepository(session, data.org_id).release(enrollment.agent_id, log.channel,
                                                                              log.cap_day)
                log.outcome, log.cap_day = data.outcome, None
            await session.commit()

    @activity.defn(name="sequence.lead_facts")
    async def lead_facts(self, data: LeadFactsInput) -> LeadFactsResult:
        """The lead as it is now, for branch conditions."""
        async with self.sessions() as session:
            lead = await SequenceContextRepository(session, data.org_id).lead(data.lead_id)
        if lead is None:
            return LeadFactsResult(found=False)
        return LeadFactsResult(found=True, facts=lead_facts(lead))

    # ---- side effects -------------------------------------------------------------------------

    @activity.defn(name="sequence.send_message")
    async def send_message(self, data: SendInput) -> SendResult:
        """Send a message step once per key; suppressed when the lead may no longer be contacted."""
        async with self.sessions() as session:
            enrollment = await self._enrollment(session, data.org_id, data.enrollment_id)
            log = await StepLogRepository(session, data.org_id).claim(
                enrollment.id, data.step_id, data.step_key, data.kind, channel=data.channel, outcome="scheduled"
            )
            if log.outcome == "sent":
                await session.commit()
                return SendResult(status=SendStatus.already_sent, external_id=log.external_id)
            context = SequenceContextRepository(session, data.org_id)
            lead = await context.lead(enrollment.lead_id)
            reason = await self._must_not_contact(session, enrollment, lead)
            if reason is not None:
                log.outcome = "suppressed"
                log.payload = {"reason": reason.value}
                await session.commit()
                return SendResult(status=SendStatus.suppressed, exit_reason=reason)
            assert lead is not None
            agent = await context.agent(enrollment.agent_id)
            try:
                text = data.text if data.literal else render_text(
                    data.text, lead_variables(lead_facts(lead), agent_name=agent.name if agent else ""))
            except TemplateRenderError as exc:
                raise ApplicationError(f"message template failed: {exc}", type="TemplateError",
                                       non_retryable=True) from exc
            conversation, receiver = chat_address(lead)
            # Commit (and so unlock) before the network call; a concurrent duplicate attempt is then
            # deduplicated by amojo on the msgid rather than blocked on our row lock.
            await session.commit()
        sent_at = _attempt_time()
        try:
            chat = await self.kommo.chat(data.org_id)
            result = await chat.client.send_message(
                chat.scope_id, conversation, text, data.step_key, receiver=receiver, timestamp=sent_at.timestamp()
            )
        except PROVIDER_ERRORS as exc:
            raise temporal_error(exc) from exc
        async with self.sessions() as session:
            log = await StepLogRepository(session, data.org_id).claim(
                enrollment.id, data.step_id, data.step_key, data.kind
            )
            if log.outcome != "sent":
                log.outcome, log.sent_at, log.external_id = "sent", sent_at, result.ref_id
                log.payload = {"text": text, "variant": data.variant_id, "conversation_id": conversation}
            lead_row = await SequenceContextRepository(session, data.org_id).lead(enrollment.lead_id, for_update=True)
            if lead_row is not None and (lead_row.last_contacted_at is None or lead_row.last_contacted_at < sent_at):
                lead_row.last_contacted_at = sent_at
            await EnrollmentRepository(session, data.org_id).progress(
                enrollment.id, {"current_step": data.step_id, "next_action_at": None,
                                "steps_executed": data.steps_executed}, finished=False,
            )
            await session.commit()
        return SendResult(status=SendStatus.sent, external_id=result.ref_id)

    async def _must_not_contact(
        self, session: AsyncSession, enrollment: Enrollment, lead: Lead | None
    ) -> ExitReason | None:
        """Last check before contacting a lead: gone, opted out, stopped, or in an exit stage we missed."""
        if lead is None:
            return ExitReason.lead_deleted
        if lead.opted_out:
            return ExitReason.opted_out
        if enrollment.status not in LIVE_ENROLLMENT_STATUSES:
            try:
                return ExitReason(enrollment.exit_reason or ExitReason.manual.value)
            except ValueError:
                return ExitReason.manual
        version = await SequenceRepository(session, enrollment.org_id).get_version(enrollment.version_id)
        criteria = ExitCriteria.model_validate(version.exit_criteria if version else {})
        return exit_for_stage(criteria, lead.pipeline_kommo_id, lead.status_kommo_id)

    @activity.defn(name="sequence.crm_action")
    async def crm_action(self, data: CrmStepInput) -> StepDone:
        """Apply a CRM action to the lead in Kommo (and to our mirror), once per key."""
        async with self.sessions() as session:
            enrollment = await self._enrollment(session, data.org_id, data.enrollment_id)
            log = await StepLogRepository(session, data.org_id).claim(
                enrollment.id, data.step_id, data.step_key, "crm_action", payload={"action": data.action.kind}
            )
            if log.outcome == "done":
                await session.commit()
                return StepDone(outcome="done", repeated=True)
            lead = await SequenceContextRepository(session, data.org_id).lead(enrollment.lead_id)
            if lead is None:
                log.outcome = "skipped"
                await session.commit()
                return StepDone(outcome="lead_deleted")
            kommo_id = lead.kommo_id
            note_text = ""
            if isinstance(data.action, AddNote):
                note_text = render_text(data.action.text, lead_variables(lead_facts(lead)))
            await session.commit()
        action = data.action
        try:
            client = await self.kommo.api(data.org_id)
            if isinstance(action, MoveStage):
                await client.update_lead(kommo_id, status_id=action.status_id, pipeline_id=action.pipeline_id)
            elif isinstance(action, AddTag):
                await client.add_tags(kommo_id, list(action.tags))
            elif isinstance(action, CreateTask):
                due = _attempt_time() + action.due_in
                await client.add_task(kommo_id, action.text, int(due.timestamp()),
                                      responsible_user_id=action.responsible_user_id)
            elif isinstance(action, AddNote):
                await client.add_note(kommo_id, note_text)
            elif isinstance(action, SetField):
                value: dict[str, object] = {"value": action.value}
                if action.enum_id is not None:
                    value["enum_id"] = action.enum_id
                await client.update_lead(kommo_id, custom_fields_values=[{"field_id": action.field_id,
                                                                          "values": [value]}])
        except PROVIDER_ERRORS as exc:
            raise temporal_error(exc) from exc
        async with self.sessions() as session:
            log = await StepLogRepository(session, data.org_id).claim(enrollment.id, data.step_id, data.step_key,
                                                                      "crm_action")
            log.outcome, log.sent_at = "done", _attempt_time()
            lead_row = await SequenceContextRepository(session, data.org_id).lead(enrollment.lead_id, for_update=True)
            # Mirror what we just changed so rules and branches see it before the next CRM sync.
            if lead_row is not None and isinstance(action, MoveStage):
                lead_row.status_kommo_id = action.status_id
                if action.pipeline_id is not None:
                    lead_row.pipeline_kommo_id = action.pipeline_id
            if lead_row is not None and isinstance(action, AddTag):
                known = {t.casefold() for t in lead_row.tags or []}
                lead_row.tags = [*(lead_row.tags or []), *(t for t in action.tags if t.casefold() not in known)]
            await EnrollmentRepository(session, data.org_id).progress(
                enrollment.id, {"current_step": data.step_id, "steps_executed": data.steps_executed}, finished=False
            )
            await session.commit()
        return StepDone(outcome="done")

    @activity.defn(name="sequence.notify")
    async def notify(self, data: NotifyStepInput) -> StepDone:
        """Create the step's in-app notification, and for ``email`` queue it to the user (or the owners).

        One notification and one outbox row per recipient per key, whatever the retries.
        """
        async with self.sessions() as session:
            enrollment = await self._enrollment(session, data.org_id, data.enrollment_id)
            lead = await SequenceContextRepository(session, data.org_id).lead(enrollment.lead_id)
            values = lead_variables(lead_facts(lead)) if lead is not None else {}
            try:
                title = render_text(data.title, values)[:300] or "Sequence step"
                body = render_text(data.body, values)[:10_000]
            except TemplateRenderError as exc:
                raise ApplicationError(f"notification template failed: {exc}", non_retryable=True) from exc
            dedupe = "seq:" + hashlib.sha256(data.step_key.encode()).hexdigest()[:48]
            await NotificationRepository(session, data.org_id).create_once(
                kind="sequence_step", title=title, body=body, user_id=data.user_id, dedupe_key=dedupe,
            )
            outbox_ids: list[uuid.UUID] = []
            if data.channel == "email":
                users = UserRepository(session)
                recipients = await users.members_with_role(data.org_id, Role.owner)
                if data.user_id is not None:
                    # Only a member of this organisation: a stale user id must not mail a stranger.
                    member = await users.get_membership(data.org_id, data.user_id)
                    user = await session.get(User, data.user_id) if member is not None else None
                    recipients = [user] if user is not None and user.is_active else []
                outbox = EmailOutboxRepository(session, data.org_id)
                for user in recipients:
                    outbox_ids.append(await outbox.enqueue(
                        to_address=user.email, subject=title, body_text=body, body_html=html.escape(body),
                        template_key=None, idempotency_key=f"sequence-notify/{data.org_id}/{dedupe}/{user.id}",
                    ))
            await StepLogRepository(session, data.org_id).write_once(
                enrollment.id, data.step_id, data.step_key, "notify", outcome="done", sent_at=_attempt_time(),
                payload={"title": title},
            )
            await EnrollmentRepository(session, data.org_id).progress(
                enrollment.id, {"current_step": data.step_id, "steps_executed": data.steps_executed}, finished=False
            )
            await session.commit()
        return StepDone(outcome="done", outbox_ids=outbox_ids)

    @activity.defn(name="sequence.call_webhook")
    async def call_webhook(self, data: WebhookStepInput) -> StepDone:
        """POST the enrolment to the step's webhook; the receiver dedupes on ``Idempotency-Key``."""
        async with self.sessions() as session:
            enrollment = await self._enrollment(session, data.org_id, data.enrollment_id)
            log = await StepLogRepository(session, data.org_id).claim(
                enrollment.id, data.step_id, data.step_key, "webhook", payload={"url": data.url}
            )
            if log.outcome == "done":
                await session.commit()
                return StepDone(outcome="done", repeated=True)
            lead = await SequenceContextRepository(session, data.org_id).lead(enrollment.lead_id)
            body = {
                "event": "sequence.step", "org_id": str(data.org_id), "enrollment_id": str(enrollment.id),
                "sequence_id": str(enrollment.sequence_id), "step_id": data.step_id,
                "lead": lead_facts(lead).model_dump(mode="json") if lead is not None else None,
                "payload": data.payload,
            }
            await session.commit()
        try:
            status = await self.webhooks.post(data.url, body, data.step_key)
        except WebhookError as exc:
            raise temporal_error(exc) from exc
        async with self.sessions() as session:
            log = await StepLogRepository(session, data.org_id).claim(enrollment.id, data.step_id, data.step_key,
                                                                      "webhook")
            log.outcome, log.sent_at = "done", _attempt_time()
            log.payload = {"url": data.url, "status": status}
            await EnrollmentRepository(session, data.org_id).progress(
                enrollment.id, {"current_step": data.step_id, "steps_executed": data.steps_executed}, finished=False
            )
            await session.commit()
        return StepDone(outcome="done")

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this class, for the worker."""
        return [self.begin, self.record_progress, self.window_time, self.reserve_send_slot, self.release_send_slot,
                self.lead_facts, self.send_message, self.crm_action, self.notify, self.call_webhook]


__all__ = [
    "DAILY_CAP_SETTING",
    "ChatChannel",
    "ChatChannelLike",
    "KommoClientProvider",
    "KommoNotConnectedError",
    "SequenceActivities",
    "StoredConnectionKommo",
    "chat_address",
    "temporal_error",
]
