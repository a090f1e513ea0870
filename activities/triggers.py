"""Triggers at work: tell running enrolments what happened, then fire the matching triggers' actions.

``run_triggers`` is one activity per CRM event (the ``CrmEventWorkflow`` calls it), safe to retry:

* enrolments are signalled (``lead_replied`` for an incoming message, ``crm_stage_changed`` for a
  status change); a signal repeated by a retry is harmless (the enrolment is already stopping);
* each fired trigger gets one ``trigger_executions`` row per (trigger, lead, event key), claimed under
  a per-lead lock, so a redelivered event fires nothing twice and ``per_lead_limit`` holds;
* the row remembers which actions are done; a retry performs only the rest, each with its own
  idempotency key (enrolment row per lead, amojo msgid, notification dedupe key, webhook header).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from activities.sequences import (
    PROVIDER_ERRORS,
    KommoClientProvider,
    StoredConnectionKommo,
    chat_address,
    temporal_error,
)
from db.base import utcnow
from db.models import EnrollmentStatus, Lead, Trigger, TriggerExecution
from db.repositories.content import NotificationRepository
from db.repositories.sequences import (
    EnrollmentRepository,
    SequenceContextRepository,
    SequenceRepository,
    TriggerRepository,
)
from domain.sequence_messages import lead_variables, render_text
from domain.sequences import ExitReason
from domain.templates import TemplateRenderError
from domain.triggers import (
    AssignAgentAction,
    CallWebhookAction,
    EnrollInSequenceAction,
    MoveStageAction,
    NotifyAction,
    SendMessageAction,
    StopSequencesAction,
    TriggerAction,
    TriggerDefinition,
    TriggerEvent,
    TriggerEventType,
    match_triggers,
)
from integrations.outbound_webhooks import OutboundWebhookClient, WebhookError
from salesflow.enrollment import enroll_leads
from salesflow.sequence_facts import lead_facts
from salesflow.sequences import (
    EnrollmentStart,
    enrollment_handle,
    enrollment_summary,
    request_cancel,
    start_enrollment_workflow,
)
from salesflow.settings import Settings
from workflows.sequence_enrollment import SequenceEnrollmentWorkflow
from workflows.sequence_models import CrmStageChanged, LeadReplied
from workflows.trigger_models import ActionOutcome, FiredTrigger, TriggerRunInput, TriggerRunResult

ACTION_ERRORS: tuple[type[Exception], ...] = (*PROVIDER_ERRORS, WebhookError)


def trigger_definition(row: Trigger) -> TriggerDefinition | None:
    """The stored trigger as the matcher sees it (None if the stored JSON no longer validates)."""
    try:
        return TriggerDefinition.model_validate({
            "id": row.id, "agent_id": row.agent_id, "on": row.event, "conditions": row.conditions,
            "actions": row.actions, "per_lead_limit": row.per_lead_limit, "enabled": row.enabled,
        })
    except ValueError:
        return None


class TriggerActivities:
    """Trigger evaluation and actions, with the database, Kommo and webhook clients injected."""

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

    @activity.defn(name="triggers.run")
    async def run_triggers(self, data: TriggerRunInput) -> TriggerRunResult:
        """Signal the lead's running enrolments, then fire every matching trigger's actions once."""
        client = activity.client()
        async with self.sessions() as session:
            lead = await SequenceContextRepository(session, data.org_id).lead_by_kommo_id(data.event.lead_kommo_id)
            if lead is None:
                return TriggerRunResult(lead_found=False)
            live = await EnrollmentRepository(session, data.org_id).live_for_lead(lead.id)
            workflow_ids = [(row.workflow_id, row.id) for row in live]
            fired = await self._claim(session, data, lead)
            await session.commit()
        signalled = await self._signal(client, data, workflow_ids) if data.signal_enrollments else 0
        results = [await self._perform(client, data, lead.id, trigger_id, execution_id, actions, repeated)
                   for trigger_id, execution_id, actions, repeated in fired]
        return TriggerRunResult(lead_found=True, signalled=signalled, fired=results)

    async def _claim(
        self, session: AsyncSession, data: TriggerRunInput, lead: Lead
    ) -> list[tuple[uuid.UUID, uuid.UUID, tuple[TriggerAction, ...], bool]]:
        repo = TriggerRepository(session, data.org_id)
        definitions = [d for d in (trigger_definition(row) for row in await repo.armed(data.event.type.value)) if d]
        counts = await repo.execution_counts(lead.id, [d.id for d in definitions])
        e = data.event
        event = TriggerEvent(type=e.type, lead=lead_facts(lead), pipeline_id=e.pipeline_id, status_id=e.status_id,
                             old_status_id=e.old_status_id, tag=e.tag, text=e.text, channel=e.channel,
                             hours_without_reply=e.hours_without_reply, every=e.every)
        # A retry of this very event has its executions counted already: let those through to finish.
        mine = set(await repo.triggers_fired_by(lead.id, data.event_key))
        adjusted = {tid: count - (1 if tid in mine else 0) for tid, count in counts.items()}
        limits = {d.id: d.per_lead_limit for d in definitions}
        claimed = []
        for match in match_triggers(event, definitions, adjusted):
            new, execution = await repo.claim(match.trigger_id, lead.id, data.event_key, limits[match.trigger_id])
            if execution is None or execution.outcome.get("complete"):
                continue
            claimed.append((match.trigger_id, execution.id, match.actions, not new))
        return claimed

    async def _signal(self, client: Client, data: TriggerRunInput, runs: list[tuple[str, uuid.UUID]]) -> int:
        signalled = 0
        for workflow_id, _enrollment_id in runs:
            handle = enrollment_handle(client, workflow_id)
            try:
                if data.event.type == TriggerEventType.incoming_message:
                    await handle.signal(SequenceEnrollmentWorkflow.lead_replied,
                                        LeadReplied(text=(data.event.text or "")[:4096] or None))
                elif data.event.type == TriggerEventType.status_changed and data.event.status_id is not None:
                    await handle.signal(SequenceEnrollmentWorkflow.crm_stage_changed,
                                        CrmStageChanged(status_id=data.event.status_id,
                                                        pipeline_id=data.event.pipeline_id))
                else:
                    continue
            except RPCError:
                continue  # not started yet (pending) or already finished: nothing to tell it
            signalled += 1
        return signalled

    async def _perform(
        self, client: Client, data: TriggerRunInput, lead_id: uuid.UUID, trigger_id: uuid.UUID,
        execution_id: uuid.UUID, actions: tuple[TriggerAction, ...], repeated: bool,
    ) -> FiredTrigger:
        outcomes: list[ActionOutcome] = []
        async with self.sessions() as session:
            execution = await session.get(TriggerExecution, execution_id)
            assert execution is not None
            done: dict[str, str] = dict(execution.outcome.get("done", {}))
            trigger = await session.get(Trigger, trigger_id)
            agent_id = trigger.agent_id if trigger else None
        for index, action in enumerate(actions):
            key = f"trigger:{execution_id}:{index}"
            if str(index) in done:
                outcomes.append(ActionOutcome(type=action.type, outcome=done[str(index)]))
                continue
            outcome = await self._act(client, data.org_id, lead_id, agent_id, action, key)
            done[str(index)] = outcome
            outcomes.append(ActionOutcome(type=action.type, outcome=outcome))
            await self._save(execution_id, {"done": done})
        await self._save(execution_id, {"done": done, "complete": True})
        return FiredTrigger(trigger_id=trigger_id, repeated=repeated, actions=outcomes)

    async def _save(self, execution_id: uuid.UUID, outcome: dict[str, Any]) -> None:
        async with self.sessions() as session:
            execution = await session.get(TriggerExecution, execution_id)
            if execution is not None:
                execution.outcome = outcome
                execution.updated_at = utcnow()
            await session.commit()

    async def _act(
        self, client: Client, org_id: uuid.UUID, lead_id: uuid.UUID, agent_id: uuid.UUID | None,
        action: TriggerAction, key: str,
    ) -> str:
        handlers: dict[type, Callable[..., Any]] = {
            EnrollInSequenceAction: self._enroll, StopSequencesAction: self._stop, AssignAgentAction: self._assign,
            SendMessageAction: self._send, MoveStageAction: self._move, NotifyAction: self._notify,
            CallWebhookAction: self._webhook,
        }
        try:
            result: str = await handlers[type(action)](client, org_id, lead_id, agent_id, action, key)
            return result
        except ACTION_ERRORS as exc:
            raise temporal_error(exc) from exc

    async def _enroll(self, client: Client, org_id: uuid.UUID, lead_id: uuid.UUID, agent_id: uuid.UUID | None,
                      action: EnrollInSequenceAction, key: str) -> str:
        async with self.sessions() as session:
            sequence = await SequenceRepository(session, org_id).get(action.sequence_id, agent_id)
            lead = await SequenceContextRepository(session, org_id).lead(lead_id)
            if sequence is None or lead is None or sequence.status.value != "active":
                return "sequence_unavailable"
            outcome = (await enroll_leads(session, org_id, sequence, [lead], source="trigger", request_id=None,
                                          now=utcnow()))[0]
            await session.commit()
            if not outcome.enrolled or outcome.enrollment_id is None:
                return f"not_enrolled:{outcome.reason}"
            start = EnrollmentStart(org_id=org_id, agent_id=sequence.agent_id, sequence_id=sequence.id,
                                    lead_id=lead.id, enrollment_id=outcome.enrollment_id,
                                    summary=enrollment_summary(sequence.name, lead))
        # Same task queue as this activity's worker: one deployment runs both.
        await start_enrollment_workflow(client, self.settings, start, task_queue=activity.info().task_queue)
        return f"enrolled:{outcome.enrollment_id}"

    async def _stop(self, client: Client, org_id: uuid.UUID, lead_id: uuid.UUID, agent_id: uuid.UUID | None,
                    action: StopSequencesAction, key: str) -> str:
        async with self.sessions() as session:
            rows = await EnrollmentRepository(session, org_id).live_for_lead(
                lead_id, agent_id=agent_id, sequence_ids=list(action.sequence_ids))
        stopped = 0
        for row in rows:
            if await request_cancel(client, row.workflow_id, row.id, ExitReason.manual):
                stopped += 1
            else:
                async with self.sessions() as session:
                    stopped += await EnrollmentRepository(session, org_id).mark_finished(
                        [row.id], EnrollmentStatus.cancelled, ExitReason.manual.value)
                    await session.commit()
        return f"stopped:{stopped}"

    async def _assign(self, client: Client, org_id: uuid.UUID, lead_id: uuid.UUID, agent_id: uuid.UUID | None,
                      action: AssignAgentAction, key: str) -> str:
        target = action.agent_id or agent_id
        async with self.sessions() as session:
            context = SequenceContextRepository(session, org_id)
            lead = await context.lead(lead_id, for_update=True)
            if target is None or lead is None or await context.agent(target) is None:
                return "agent_unavailable"
            lead.agent_id = target
            await session.commit()
        return f"assigned:{target}"

    async def _send(self, client: Client, org_id: uuid.UUID, lead_id: uuid.UUID, agent_id: uuid.UUID | None,
                    action: SendMessageAction, key: str) -> str:
        async with self.sessions() as session:
            lead = await SequenceContextRepository(session, org_id).lead(lead_id)
            if lead is None:
                return "lead_deleted"
            if lead.opted_out:
                return "suppressed:opted_out"
            try:
                text = render_text(action.text, lead_variables(lead_facts(lead)))
            except TemplateRenderError as exc:
                return f"template_error:{exc}"[:200]
            conversation, receiver = chat_address(lead)
        chat = await self.kommo.chat(org_id)
        # The key is the amojo msgid: a retried activity re-sends it and amojo drops the duplicate.
        await chat.client.send_message(chat.scope_id, conversation, text, key, receiver=receiver)
        async with self.sessions() as session:
            row = await SequenceContextRepository(session, org_id).lead(lead_id, for_update=True)
            if row is not None:
                row.last_contacted_at = utcnow()
            await session.commit()
        return "sent"

    async def _move(self, client: Client, org_id: uuid.UUID, lead_id: uuid.UUID, agent_id: uuid.UUID | None,
                    action: MoveStageAction, key: str) -> str:
        async with self.sessions() as session:
            lead = await SequenceContextRepository(session, org_id).lead(lead_id)
            if lead is None:
                return "lead_deleted"
            kommo_id = lead.kommo_id
        kommo = await self.kommo.api(org_id)
        await kommo.update_lead(kommo_id, status_id=action.status_id, pipeline_id=action.pipeline_id)
        async with self.sessions() as session:
            row = await SequenceContextRepository(session, org_id).lead(lead_id, for_update=True)
            if row is not None:
                row.status_kommo_id = action.status_id
                if action.pipeline_id is not None:
                    row.pipeline_kommo_id = action.pipeline_id
            await session.commit()
        return "moved"

    async def _notify(self, client: Client, org_id: uuid.UUID, lead_id: uuid.UUID, agent_id: uuid.UUID | None,
                      action: NotifyAction, key: str) -> str:
        async with self.sessions() as session:
            lead = await SequenceContextRepository(session, org_id).lead(lead_id)
            values = lead_variables(lead_facts(lead)) if lead is not None else {}
            try:
                title = render_text(action.title, values)[:300] or "Trigger fired"
                body = render_text(action.body, values)
            except TemplateRenderError:
                title, body = action.title, action.body
            await NotificationRepository(session, org_id).create_once(
                kind="trigger", title=title, body=body, user_id=None, dedupe_key=key)
            await session.commit()
        return "notified"

    async def _webhook(self, client: Client, org_id: uuid.UUID, lead_id: uuid.UUID, agent_id: uuid.UUID | None,
                       action: CallWebhookAction, key: str) -> str:
        async with self.sessions() as session:
            lead = await SequenceContextRepository(session, org_id).lead(lead_id)
            body = {"event": "trigger.fired", "org_id": str(org_id), "key": key,
                    "lead": lead_facts(lead).model_dump(mode="json") if lead is not None else None,
                    "payload": action.payload}
        status = await self.webhooks.post(str(action.url), body, key)
        return f"posted:{status}"
