"""LeadConversationWorkflow: one entity per lead (``conversation/{org}/{lead}``) that answers its messages.

Messages arrive by signal (signal-with-start from the chat hook or the CRM webhook path). A burst is debounced
into one answer; the brain (an activity) writes it; it is sent through the Kommo chat with a msgid derived from
the answered message ids, so a retried send or a replayed run never reaches the lead twice. A manager's message,
a rule, or the lead asking for a person hands the lead to a human for a while; approval mode holds each reply as
a draft for a person to approve, edit or reject. After a bounded number of turns the run continues as new,
carrying its summary.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.brain import BrainActivities
    from activities.conversations import ConversationActivities
    from activities.notify import NotifyActivities, NotifyInput
    from domain.brain.summary import summarize, transcript_line
    from domain.opt_out import opt_out_phrase
    from workflows.conversation_models import (
        CarriedState,
        ConversationContext,
        ConversationInput,
        ConversationPolicy,
        ConversationSnapshot,
        CrmUpdatesInput,
        DraftDecision,
        DraftOutcome,
        DraftOutcomeInput,
        HandBack,
        HandoffInput,
        IncomingMessage,
        LeadRepliedInput,
        OpenConversationInput,
        OptOutInput,
        RecordInboundInput,
        RecordReplyInput,
        ReplyInput,
        ReplyOutput,
        SaveStateInput,
        SendReplyInput,
    )

DB = timedelta(seconds=30)
BRAIN = timedelta(seconds=120)
SEND = timedelta(seconds=30)
SEND_RETRY = RetryPolicy(maximum_attempts=20, maximum_interval=timedelta(minutes=5))
BEST_EFFORT = RetryPolicy(maximum_attempts=3)
BRAIN_RETRY = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(minutes=1))
# A burst is answered at the latest this many debounce windows after its first message.
MAX_DEBOUNCE_WINDOWS = 4
SEEN_IDS = 500
# Runs recorded before opt-out detection replay without it.
OPT_OUT_PATCH = "lead-opt-out"


def reply_msgid(message_ids: list[str]) -> str:
    """Our amojo msgid for the answer to these messages: the same messages always give the same id."""
    digest = hashlib.sha256("\n".join(sorted(message_ids)).encode()).hexdigest()[:32]
    return f"sf-{digest}"


@workflow.defn
class LeadConversationWorkflow:
    """Entity workflow of one lead's conversation; see the module docstring."""

    def __init__(self) -> None:
        self._org_id = ""
        self._ctx: ConversationContext | None = None
        self._policy: ConversationPolicy | None = None
        self._inbox: list[IncomingMessage] = []
        self._to_answer: list[IncomingMessage] = []
        self._received = 0
        self._seen: list[str] = []
        self._seen_set: set[str] = set()
        self._handback: HandBack | None = None
        self._handoff_until: datetime | None = None
        self._handoff_reason: str | None = None
        self._draft_id: str | None = None
        self._draft_text = ""
        self._decision: DraftDecision | None = None
        self._turns = 0
        self._turns_this_run = 0
        self._runs = 1
        self._stage: str | None = None
        self._fields: dict[str, object] = {}
        self._summary = ""

    # ------------------------------------------------------------------ handlers

    @workflow.signal
    def incoming_message(self, message: IncomingMessage) -> None:
        """A message in the lead's chat; repeats of a message id are dropped."""
        if message.message_id in self._seen_set:
            return
        self._remember(message.message_id)
        self._inbox.append(message)
        if message.author == "lead":
            self._received += 1

    @workflow.signal
    def hand_back(self, data: HandBack) -> None:
        """A manager hands the lead back to the agent before the handoff window ends."""
        self._handback = data

    @workflow.update
    def decide_draft(self, decision: DraftDecision) -> DraftOutcome:
        """Approve, edit or reject the pending draft; the run sends or closes it right after.

        It answers at once instead of waiting for the send: an update that stays open across workflow tasks
        keeps the time-skipping test server's clock locked, and the caller gains nothing by waiting.
        """
        self._decision = decision
        text = decision.text if decision.decision == "edit" and decision.text else self._draft_text
        return DraftOutcome(message_id=decision.message_id, status="accepted", decision=decision.decision,
                            text="" if decision.decision == "reject" else text)

    @decide_draft.validator
    def _validate_decision(self, decision: DraftDecision) -> None:
        if self._draft_id is None or self._draft_id != str(decision.message_id) or self._decision is not None:
            raise ValueError("no such draft is waiting for approval")
        if decision.decision == "edit" and not (decision.text or "").strip():
            raise ValueError("an edit needs the text to send")

    @workflow.query
    def snapshot(self) -> ConversationSnapshot:
        """The live state: handoff, waiting messages, pending draft, turns, stage, fields, summary."""
        ctx = self._ctx
        return ConversationSnapshot(
            conversation_id=ctx.conversation_id if ctx else None, agent_id=ctx.agent_id if ctx else None,
            status="handoff" if self._in_handoff() else "active", handoff_until=self._handoff_until,
            handoff_reason=self._handoff_reason, waiting_messages=len(self._inbox) + len(self._to_answer),
            pending_draft_id=self._draft_id, turns=self._turns,
            turns_this_run=self._turns_this_run, runs=self._runs, stage=self._stage, fields=dict(self._fields),
            summary=self._summary,
        )

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, data: ConversationInput) -> ConversationSnapshot:
        """Answer the lead's messages until the conversation has been idle for the policy's idle time."""
        self._org_id = str(data.org_id)
        carried = data.carried
        ctx = await workflow.execute_activity_method(
            ConversationActivities.open_conversation,
            OpenConversationInput(org_id=data.org_id, lead_id=data.lead_id, workflow_id=workflow.info().workflow_id),
            start_to_close_timeout=DB,
        )
        self._ctx = ctx
        self._policy = ctx.policy
        self._turns, self._stage, self._fields, self._summary = ctx.turns, ctx.stage, dict(ctx.fields), ctx.summary
        if carried is not None:
            self._turns, self._runs, self._summary = carried.turns, carried.runs, carried.summary
            self._stage = carried.stage or self._stage
            self._fields = {**self._fields, **carried.fields}
            self._handoff_until, self._handoff_reason = carried.handoff_until, carried.handoff_reason
            self._to_answer = list(carried.to_answer)
            self._inbox = [*carried.inbox, *self._inbox]
            for message_id in carried.seen_ids:
                self._remember(message_id)
        max_turns = data.max_turns_per_run or 100

        while True:
            await self._drain_inbox(data)
            if self._handback is not None:
                reason = "handed back by a manager"
                self._handback = None
                if self._in_handoff():
                    await self._end_handoff(data, reason)
            if self._in_handoff():
                await self._wait_out_handoff(data)
                continue
            if self._to_answer:
                if not await self._debounce(data):
                    continue
                batch, self._to_answer = self._to_answer, []
                await self._answer(data, batch)
                if self._turns_this_run >= max_turns or workflow.info().is_continue_as_new_suggested():
                    await self._continue_as_new(data)
                continue
            if self._inbox:
                continue
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox) or self._handback is not None,
                    timeout=timedelta(seconds=self._pol().idle_seconds),
                )
            except TimeoutError:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._inbox:
                    return self.snapshot()

    # ------------------------------------------------------------------ steps

    def _pol(self) -> ConversationPolicy:
        assert self._policy is not None
        return self._policy

    def _remember(self, message_id: str) -> None:
        self._seen.append(message_id)
        self._seen_set.add(message_id)
        if len(self._seen) > SEEN_IDS:
            self._seen_set.discard(self._seen.pop(0))

    def _in_handoff(self) -> bool:
        return self._handoff_until is not None and workflow.now() < self._handoff_until

    def _debounce_window(self, data: ConversationInput) -> float:
        return data.debounce_seconds if data.debounce_seconds is not None else self._pol().debounce_seconds

    async def _drain_inbox(self, data: ConversationInput) -> None:
        """Record what arrived; a manager's message hands the lead over, lead messages wait for an answer."""
        if not self._inbox:
            return
        assert self._ctx is not None
        batch, self._inbox = self._inbox, []
        await workflow.execute_activity_method(
            ConversationActivities.record_inbound,
            RecordInboundInput(org_id=data.org_id, conversation_id=self._ctx.conversation_id, messages=batch),
            start_to_close_timeout=DB,
        )
        lead_messages = [m for m in batch if m.author == "lead"]
        self._summary = summarize(
            self._summary, [transcript_line(m.author, m.text) for m in batch], self._fields, self._stage
        )
        opted_out = await self._opt_out(data, lead_messages)
        if any(m.author == "manager" for m in batch):
            await self._start_handoff(data, "a manager replied in the chat", notify=not self._in_handoff())
        elif lead_messages and not self._in_handoff() and not opted_out:
            self._to_answer.extend(lead_messages)
        if lead_messages:
            last = lead_messages[-1]
            try:
                await workflow.execute_activity_method(
                    ConversationActivities.signal_lead_replied,
                    LeadRepliedInput(org_id=data.org_id, lead_id=data.lead_id, message_id=last.message_id,
                                     text=last.text, replied_at=last.sent_at or workflow.now()),
                    start_to_close_timeout=DB, retry_policy=BEST_EFFORT,
                )
            except ActivityError:
                workflow.logger.warning("could not signal the lead's sequence enrolments")

    async def _opt_out(self, data: ConversationInput, lead_messages: list[IncomingMessage]) -> bool:
        """A lead asking us to stop gets no sales answer, and its sequences stop; True when that happened.

        Later messages from the lead are answered again (the lead started that exchange), but no sequence
        writes to it: the lead stays opted out until a person clears it.
        """
        asking = next(((m, p) for m in lead_messages if (p := opt_out_phrase(m.text)) is not None), None)
        if asking is None or not workflow.patched(OPT_OUT_PATCH):
            return False
        assert self._ctx is not None
        message, phrase = asking
        await workflow.execute_activity_method(
            ConversationActivities.opt_out_lead,
            OptOutInput(org_id=data.org_id, lead_id=data.lead_id, conversation_id=self._ctx.conversation_id,
                        message_id=message.message_id, phrase=phrase),
            start_to_close_timeout=DB,
        )
        self._to_answer = []
        return True

    async def _debounce(self, data: ConversationInput) -> bool:
        """Wait for a quiet window after the latest lead message; False if the lead was handed over meanwhile."""
        window = self._debounce_window(data)
        deadline = workflow.now() + timedelta(seconds=window * MAX_DEBOUNCE_WINDOWS)
        while window > 0:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                break
            try:
                await workflow.wait_condition(
                    lambda seen=self._received: self._received > seen,  # type: ignore[misc]
                    timeout=timedelta(seconds=min(window, remaining)),
                )
            except TimeoutError:
                break
            await self._drain_inbox(data)
            if self._in_handoff():
                return False
        await self._drain_inbox(data)
        return not self._in_handoff()

    async def _answer(self, data: ConversationInput, batch: list[IncomingMessage]) -> None:
        assert self._ctx is not None
        ids = [m.message_id for m in batch]
        request = ReplyInput(org_id=data.org_id, conversation_id=self._ctx.conversation_id,
                             texts=[m.text for m in batch], message_ids=ids, turn=self._turns, summary=self._summary)
        try:
            reply = await self._generate(request)
        except ActivityError:
            workflow.logger.exception("no reply for messages %s", ids)
            return
        if reply.policy is not None:
            self._policy = reply.policy
        if not reply.text:
            return
        self._stage = reply.stage or self._stage
        self._fields = {**self._fields, **reply.fields}
        if not reply.crm.empty:
            try:
                await workflow.execute_activity_method(
                    BrainActivities.apply_crm_updates,
                    CrmUpdatesInput(org_id=data.org_id, conversation_id=self._ctx.conversation_id, updates=reply.crm),
                    start_to_close_timeout=DB, retry_policy=BRAIN_RETRY,
                )
            except ActivityError:
                workflow.logger.warning("could not write extracted fields to Kommo")
        sent_text = await self._deliver(data, reply, reply_msgid(ids))
        self._turns += 1
        self._turns_this_run += 1
        lines = [transcript_line("agent", sent_text)] if sent_text else []
        self._summary = summarize(self._summary, lines, self._fields, self._stage)
        await workflow.execute_activity_method(
            ConversationActivities.save_state,
            SaveStateInput(org_id=data.org_id, conversation_id=self._ctx.conversation_id, summary=self._summary,
                           turns=self._turns, stage=self._stage),
            start_to_close_timeout=DB,
        )
        if reply.handoff_reason is not None:
            await self._start_handoff(data, reply.handoff_reason, notify=True)

    async def _generate(self, request: ReplyInput) -> ReplyOutput:
        try:
            return await workflow.execute_activity_method(
                BrainActivities.generate_reply, request, start_to_close_timeout=BRAIN, retry_policy=BRAIN_RETRY
            )
        except ActivityError:
            # The LLM refused or stayed down: the offline playbook still answers from configured content.
            workflow.logger.warning("brain provider failed; answering with the playbook")
            fallback = request.model_copy(update={"provider": "playbook"})
            return await workflow.execute_activity_method(
                BrainActivities.generate_reply, fallback, start_to_close_timeout=BRAIN, retry_policy=BRAIN_RETRY
            )

    async def _deliver(self, data: ConversationInput, reply: ReplyOutput, msgid: str) -> str | None:
        """Send now, or hold as a draft for approval; returns the text that went out (None if none did)."""
        assert self._ctx is not None
        policy = self._pol()
        message_id = await workflow.execute_activity_method(
            ConversationActivities.record_reply,
            RecordReplyInput(org_id=data.org_id, conversation_id=self._ctx.conversation_id, text=reply.text,
                             msgid=msgid, draft=policy.approval_mode, meta=reply.meta),
            start_to_close_timeout=DB,
        )
        text: str | None = reply.text
        meta: dict[str, object] = {}
        if policy.approval_mode:
            self._draft_id, self._draft_text, self._decision = message_id, reply.text, None
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._decision is not None and str(self._decision.message_id) == message_id,
                    timeout=timedelta(seconds=policy.approval_timeout_seconds),
                )
            decision, self._decision = self._decision, None
            if decision is None:
                meta = {"approval": f"timeout:{policy.approval_timeout_policy}"}
                if policy.approval_timeout_policy == "discard":
                    text = None
            elif decision.decision == "reject":
                meta = {"approval": "rejected", "by": str(decision.user_id) if decision.user_id else None}
                text = None
            else:
                meta = {"approval": decision.decision, "by": str(decision.user_id) if decision.user_id else None}
                text = decision.text if decision.decision == "edit" and decision.text else reply.text
            if text is None:
                status = "rejected" if decision is not None else "discarded"
                await workflow.execute_activity_method(
                    ConversationActivities.close_draft,
                    DraftOutcomeInput(org_id=data.org_id, message_id=message_id, status=status,
                                      meta=meta),
                    start_to_close_timeout=DB,
                )
                self._resolve(message_id)
                return None
        status = await workflow.execute_activity_method(
            ConversationActivities.send_reply,
            SendReplyInput(org_id=data.org_id, message_id=message_id, text=text, meta=meta),
            start_to_close_timeout=SEND, retry_policy=SEND_RETRY,
        )
        self._resolve(message_id)
        return text if status in ("sent", "recorded") else None

    def _resolve(self, message_id: str) -> None:
        if self._draft_id == message_id:
            self._draft_id, self._draft_text = None, ""

    async def _start_handoff(self, data: ConversationInput, reason: str, *, notify: bool) -> None:
        """A person takes over for the policy's window (a manager writing again extends it)."""
        assert self._ctx is not None
        now = workflow.now()
        until = now + timedelta(seconds=self._pol().handoff_seconds)
        self._handoff_until, self._handoff_reason = until, reason
        self._to_answer = []
        await workflow.execute_activity_method(
            ConversationActivities.record_handoff,
            HandoffInput(org_id=data.org_id, conversation_id=self._ctx.conversation_id, reason=reason, until=until,
                         key=f"handoff:{self._ctx.conversation_id}:{now.isoformat()}"),
            start_to_close_timeout=DB,
        )
        if notify:
            await workflow.execute_activity_method(
                NotifyActivities.notify,
                NotifyInput(
                    org_id=data.org_id, kind="conversation_handoff", title="A lead needs a person",
                    body=f"The agent stopped answering lead {data.lead_id} until {until.isoformat()}: {reason}",
                    dedupe_key=f"handoff/{self._ctx.conversation_id}/{now.isoformat()}"[:200],
                ),
                start_to_close_timeout=DB, retry_policy=BEST_EFFORT,
            )

    async def _wait_out_handoff(self, data: ConversationInput) -> None:
        assert self._handoff_until is not None
        remaining = (self._handoff_until - workflow.now()).total_seconds()
        try:
            await workflow.wait_condition(
                lambda: bool(self._inbox) or self._handback is not None,
                timeout=timedelta(seconds=max(remaining, 0.001)),
            )
        except TimeoutError:
            await self._end_handoff(data, "the handoff window ended")

    async def _end_handoff(self, data: ConversationInput, reason: str) -> None:
        assert self._ctx is not None
        self._handoff_until, self._handoff_reason = None, None
        await workflow.execute_activity_method(
            ConversationActivities.record_handoff,
            HandoffInput(org_id=data.org_id, conversation_id=self._ctx.conversation_id, reason=reason,
                         key=f"resume:{self._ctx.conversation_id}:{workflow.now().isoformat()}"),
            start_to_close_timeout=DB,
        )

    async def _continue_as_new(self, data: ConversationInput) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        carried = CarriedState(
            summary=self._summary, turns=self._turns, runs=self._runs + 1, stage=self._stage,
            fields=dict(self._fields), handoff_until=self._handoff_until, handoff_reason=self._handoff_reason,
            to_answer=list(self._to_answer), inbox=list(self._inbox), seen_ids=self._seen[-SEEN_IDS:],
        )
        workflow.continue_as_new(data.model_copy(update={"carried": carried}))


__all__ = ["LeadConversationWorkflow", "reply_msgid"]
