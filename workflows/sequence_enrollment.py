"""SequenceEnrollmentWorkflow: one lead walking one frozen sequence version, step by step, for days.

Durability rules this workflow keeps:

* Every side effect is an activity keyed by ``{workflow_id}:{enrollment}/{step no}/{step id}``. The
  step counter is carried across continue-as-new and the graph is acyclic, so a key names one step
  execution for ever: a retried or replayed send finds its log row (or amojo dedupes the msgid).
* Waits are timers raced against signals and updates (``wait_condition`` with a timeout), so a reply,
  a won/lost stage, a pause or a cancel takes effect mid-wait, not when the timer fires.
* Send times come from an activity (the window and the caps are data in our database that may change
  while the enrolment sleeps); the workflow only sleeps until the time it was given.
* Pausing stops the clock: on resume the pending deadline moves later by the pause length, and a
  pending send books a new slot (the old one may be outside the window now).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.brain import BrainActivities
    from activities.sequences import SequenceActivities
    from domain.conditions import evaluate
    from domain.schedule import pause_shift
    from domain.sequences import (
        AiFollowUpStep,
        BranchStep,
        CrmActionStep,
        EndStep,
        ExitCriteria,
        ExitReason,
        NotifyStep,
        SendMessageStep,
        SequenceDefinition,
        Step,
        WaitForReplyStep,
        WaitStep,
        WebhookStep,
        choose_variant,
        exit_for_reply,
        exit_for_stage,
    )
    from workflows.conversation_models import FollowUpInput
    from workflows.email_delivery import EmailDeliveryWorkflow
    from workflows.email_delivery_models import DeliverEmail
    from workflows.ids import email_delivery_id
    from workflows.sequence_models import (
        BeginInput,
        CancelRequest,
        CarriedState,
        CrmStageChanged,
        CrmStepInput,
        EnrollmentInput,
        EnrollmentState,
        HistoryEntry,
        LeadFactsInput,
        LeadOptedOut,
        LeadReplied,
        NotifyStepInput,
        PauseRequest,
        ProgressInput,
        ReleaseInput,
        ReserveInput,
        ResumeRequest,
        SendInput,
        SendStatus,
        SkipRequest,
        StepLog,
        WebhookStepInput,
        WindowInput,
    )

DB_TIMEOUT = timedelta(seconds=30)
SIDE_EFFECT_TIMEOUT = timedelta(minutes=2)
BRAIN_TIMEOUT = timedelta(minutes=2)
# Third parties (Kommo, webhooks) may be down for hours: keep retrying, with a ceiling on the backoff,
# instead of failing a days-long enrolment; 4xx-like failures are raised non-retryable by the activity.
SIDE_EFFECT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=10))
HISTORY_LIMIT = 100
CARRIED_HISTORY = 30
# Runs recorded before it replay with a cancel update that waited for the run to finish.
CANCEL_ANSWERS_AT_ONCE = "cancel-answers-at-once"


@workflow.defn
class SequenceEnrollmentWorkflow:
    """``sequence/{org}/{sequence}/{lead}``: run one enrolment of a lead in a frozen sequence version."""

    def __init__(self) -> None:
        self._input: EnrollmentInput | None = None
        self._definition: SequenceDefinition | None = None
        self._exit = ExitCriteria()
        self._current: str | None = None
        self._current_type: str | None = None
        self._deadline: datetime | None = None
        self._step_no = 0
        self._steps_this_run = 0
        self._started_at: datetime | None = None
        self._history: list[HistoryEntry] = []
        self._paused_at: datetime | None = None
        self._moved = False
        self._skip_requested = False
        self._skippable = False
        self._stop: ExitReason | None = None
        self._stop_status = "exited"
        self._pending_stage: CrmStageChanged | None = None
        self._last_reply_at: datetime | None = None
        self._last_send_at: datetime | None = None
        self._ai_follow_ups = 0
        self._status = "active"
        self._finished = False
        # Handlers and the main loop both write the enrolment row; the lock keeps those writes in
        # the order the state changed.
        self._db_lock = asyncio.Lock()

    # ---- run ------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, data: EnrollmentInput) -> EnrollmentState:
        """Walk the steps until the end, an exit criterion, a cancel, or a step that fails for good."""
        self._input = data
        if data.carry is not None:
            self._restore(data.carry)
        else:
            self._started_at = workflow.now()
        try:
            plan = await workflow.execute_local_activity_method(
                SequenceActivities.begin,
                BeginInput(org_id=data.org_id, enrollment_id=data.enrollment_id, first_run=data.carry is None),
                start_to_close_timeout=DB_TIMEOUT,
            )
            if not plan.live:
                # Cancelled (or re-enrolled) before this run could start: the row already says so.
                self._stop, self._stop_status, self._status = ExitReason.manual, "cancelled", "cancelled"
                self._finished = True
                return self.state()
            self._definition = plan.definition
            self._exit = plan.exit_criteria
            if data.carry is None:
                self._current = plan.definition.entry
                self._note("enrolled", outcome=str(plan.version_id))
            self._check_pending_exits()
            while self._current is not None and self._stop is None:
                await self._until_unpaused()
                if self._stop is not None:
                    break
                if self._steps_this_run >= data.max_steps_per_run or workflow.info().is_continue_as_new_suggested():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(data.model_copy(update={"carry": self._carry()}))
                step = plan.definition.step(self._current)
                following = await self._run_step(step)
                self._step_no += 1
                self._steps_this_run += 1
                if self._stop is None:
                    self._current = following
        except ActivityError as exc:
            await self._fail(exc)
            raise ApplicationError(f"step {self._current} failed: {exc.cause or exc}", non_retryable=True) from exc
        except asyncio.CancelledError:
            # Cancelled through Temporal (UI, tctl) rather than our cancel update: still record it.
            self._request_stop(ExitReason.manual, "cancelled")
            await self._complete()
            raise
        await self._complete()
        return self.state()

    # ---- steps ----------------------------------------------------------------------------------

    def _key(self, step: Step) -> str:
        assert self._input is not None
        return f"{workflow.info().workflow_id}:{self._input.enrollment_id}/{self._step_no}/{step.id}"

    async def _run_step(self, step: Step) -> str | None:
        self._current_type = step.type
        key = self._key(step)
        if isinstance(step, WaitStep):
            return await self._wait_step(step, key)
        if isinstance(step, SendMessageStep):
            return await self._send_step(step, key)
        if isinstance(step, AiFollowUpStep):
            return await self._ai_follow_up_step(step, key)
        if isinstance(step, WaitForReplyStep):
            return await self._wait_for_reply_step(step, key)
        if isinstance(step, BranchStep):
            return await self._branch_step(step, key)
        if isinstance(step, EndStep):
            await self._record(step, key, "end", "done")
            self._note("step", step.id, "end")
            return None
        return await self._effect_step(step, key)

    async def _wait_step(self, step: WaitStep, key: str) -> str | None:
        target = workflow.now() + (step.duration or timedelta(0))
        if step.until_next_window:
            target = await self._window_time(target)
        await self._record(step, key, "wait", "waiting", next_action_at=target)
        outcome = await self._wait(target)
        self._note("step", step.id, outcome)
        return step.next

    async def _send_step(self, step: SendMessageStep, key: str) -> str | None:
        assert self._input is not None
        if step.variants:
            variant = choose_variant(str(self._input.enrollment_id), step.id, step.variants)
            variant_id, text = variant.id, variant.text
        else:
            variant_id, text = None, step.text or ""
        if not await self._book_send(step, key):
            return step.next
        return await self._send(step, key, text, variant_id=variant_id)

    async def _ai_follow_up_step(self, step: AiFollowUpStep, key: str) -> str | None:
        assert self._input is not None
        if not await self._book_send(step, key):
            return step.next
        # Written when the slot comes, not at enrolment: the conversation may have moved on while we slept.
        follow_up = await workflow.execute_activity_method(
            BrainActivities.compose_follow_up,
            FollowUpInput(org_id=self._input.org_id, lead_id=self._input.lead_id,
                          agent_id=step.agent_id or self._input.agent_id, attempt=self._ai_follow_ups),
            start_to_close_timeout=BRAIN_TIMEOUT, retry_policy=SIDE_EFFECT_RETRY,
            summary=f"compose {step.id}",
        )
        if follow_up.text:
            text, literal = follow_up.text, True
        elif step.fallback_text is not None:
            text, literal = step.fallback_text, False
        else:
            await self._release_send(key, "no_agent")
            self._note("step", step.id, "no_agent")
            return step.next
        self._ai_follow_ups += 1
        return await self._send(step, key, text, literal=literal)

    async def _book_send(self, step: SendMessageStep | AiFollowUpStep, key: str) -> bool:
        """Reserve a send slot (window and caps) and sleep until it; False when the send must not happen."""
        assert self._input is not None
        earliest = workflow.now()
        reservation = 0
        while True:
            slot = await workflow.execute_local_activity_method(
                SequenceActivities.reserve_send_slot,
                ReserveInput(
                    org_id=self._input.org_id, enrollment_id=self._input.enrollment_id, step_id=step.id,
                    step_key=key, channel=step.channel, earliest=earliest, reservation=reservation, kind=step.type,
                ),
                start_to_close_timeout=DB_TIMEOUT,
            )
            outcome = await self._wait(slot.send_at, movable=True)
            if outcome == "moved":
                # Resumed after a pause: book again from the shifted time (window and caps re-checked).
                assert self._deadline is not None
                earliest, reservation = self._deadline, reservation + 1
                continue
            break
        if outcome in ("stopped", "skipped"):
            await self._release_send(key, outcome)
            self._note("step", step.id, outcome)
            return False
        self._deadline = None
        return True

    async def _release_send(self, key: str, outcome: str) -> None:
        assert self._input is not None
        await workflow.execute_local_activity_method(
            SequenceActivities.release_send_slot,
            ReleaseInput(org_id=self._input.org_id, step_key=key, outcome=outcome),
            start_to_close_timeout=DB_TIMEOUT,
        )

    async def _send(
        self, step: SendMessageStep | AiFollowUpStep, key: str, text: str, *, variant_id: str | None = None,
        literal: bool = False,
    ) -> str | None:
        """The booked send itself: one idempotent activity, keyed by the step execution."""
        assert self._input is not None
        result = await workflow.execute_activity_method(
            SequenceActivities.send_message,
            SendInput(
                org_id=self._input.org_id, enrollment_id=self._input.enrollment_id, step_id=step.id,
                step_key=key, channel=step.channel, text=text, variant_id=variant_id,
                steps_executed=self._step_no + 1, kind=step.type, literal=literal,
            ),
            start_to_close_timeout=SIDE_EFFECT_TIMEOUT,
            retry_policy=SIDE_EFFECT_RETRY,
            summary=f"send {step.id}",
        )
        if result.status == SendStatus.suppressed:
            self._request_stop(result.exit_reason or ExitReason.manual, "exited")
            self._note("step", step.id, "suppressed", str(result.exit_reason))
            return None
        self._last_send_at = workflow.now()
        self._note("step", step.id, result.status.value, variant_id or "")
        return step.next

    async def _wait_for_reply_step(self, step: WaitForReplyStep, key: str) -> str | None:
        since = self._last_send_at or self._started_at
        assert since is not None
        target = workflow.now() + step.timeout
        await self._record(step, key, "wait_for_reply", "waiting", next_action_at=target)
        outcome = await self._wait(target, reply_since=since)
        self._note("step", step.id, outcome)
        if outcome == "replied":
            if step.on_reply is None:
                self._request_stop(ExitReason.replied, "exited")
                return None
            return step.on_reply
        return step.next

    async def _branch_step(self, step: BranchStep, key: str) -> str | None:
        assert self._input is not None
        lead = await workflow.execute_local_activity_method(
            SequenceActivities.lead_facts,
            LeadFactsInput(org_id=self._input.org_id, lead_id=self._input.lead_id),
            start_to_close_timeout=DB_TIMEOUT,
        )
        assert self._started_at is not None
        facts = lead.facts.model_copy(update={"replied": self._replied_since(self._started_at)})
        taken = "then" if evaluate(step.condition, facts) else "else"
        await self._record(step, key, "branch", taken)
        self._note("step", step.id, taken)
        return step.then if taken == "then" else step.else_

    async def _effect_step(self, step: Step, key: str) -> str | None:
        """CRM action, notification or webhook: one idempotent activity each."""
        assert self._input is not None
        org_id, enrollment_id, done_steps = self._input.org_id, self._input.enrollment_id, self._step_no + 1
        if isinstance(step, CrmActionStep):
            done = await workflow.execute_activity_method(
                SequenceActivities.crm_action,
                CrmStepInput(org_id=org_id, enrollment_id=enrollment_id, step_id=step.id, step_key=key,
                             action=step.action, steps_executed=done_steps),
                start_to_close_timeout=SIDE_EFFECT_TIMEOUT, retry_policy=SIDE_EFFECT_RETRY,
                summary=f"{step.action.kind} {step.id}",
            )
        elif isinstance(step, NotifyStep):
            done = await workflow.execute_activity_method(
                SequenceActivities.notify,
                NotifyStepInput(org_id=org_id, enrollment_id=enrollment_id, step_id=step.id, step_key=key,
                                channel=step.channel, title=step.title, body=step.body, user_id=step.user_id,
                                steps_executed=done_steps),
                start_to_close_timeout=SIDE_EFFECT_TIMEOUT, retry_policy=SIDE_EFFECT_RETRY,
                summary=f"notify {step.id}",
            )
            for outbox_id in done.outbox_ids:
                # Delivery (SMTP, its retries, marking failures) is EmailDeliveryWorkflow's job.
                await workflow.start_child_workflow(
                    EmailDeliveryWorkflow.run, DeliverEmail(org_id=org_id, outbox_id=outbox_id),
                    id=email_delivery_id(outbox_id), parent_close_policy=ParentClosePolicy.ABANDON,
                    search_attributes=workflow.info().typed_search_attributes,
                    static_summary=f"Sequence notification ({step.id})",
                )
        elif isinstance(step, WebhookStep):
            done = await workflow.execute_activity_method(
                SequenceActivities.call_webhook,
                WebhookStepInput(org_id=org_id, enrollment_id=enrollment_id, step_id=step.id, step_key=key,
                                 url=str(step.url), payload=step.payload, steps_executed=done_steps),
                start_to_close_timeout=SIDE_EFFECT_TIMEOUT, retry_policy=SIDE_EFFECT_RETRY,
                summary=f"webhook {step.id}",
            )
        else:  # pragma: no cover - the Step union is exhausted by the callers
            raise ApplicationError(f"unknown step type {step.type}", non_retryable=True)
        self._note("step", step.id, done.outcome)
        return step.next

    # ---- waiting --------------------------------------------------------------------------------

    async def _window_time(self, earliest: datetime) -> datetime:
        assert self._input is not None
        return await workflow.execute_local_activity_method(
            SequenceActivities.window_time,
            WindowInput(org_id=self._input.org_id, enrollment_id=self._input.enrollment_id, earliest=earliest),
            start_to_close_timeout=DB_TIMEOUT,
        )

    def _replied_since(self, since: datetime) -> bool:
        return self._last_reply_at is not None and self._last_reply_at >= since

    async def _wait(self, until: datetime, *, reply_since: datetime | None = None, movable: bool = False) -> str:
        """Sleep until ``until`` unless interrupted: ``elapsed``, ``skipped``, ``replied``, ``moved``, ``stopped``."""
        self._deadline = until
        self._moved = False
        self._skippable = True

        def interrupted() -> bool:
            replied = reply_since is not None and self._replied_since(reply_since)
            return (self._stop is not None or self._skip_requested or self._paused_at is not None
                    or replied or (movable and self._moved))

        try:
            while True:
                if self._stop is not None:
                    return "stopped"
                if self._skip_requested:
                    return "skipped"
                if reply_since is not None and self._replied_since(reply_since):
                    return "replied"
                if self._paused_at is not None:
                    await self._until_unpaused()
                    continue
                if movable and self._moved:
                    return "moved"
                remaining = self._deadline - workflow.now()
                if remaining <= timedelta(0):
                    return "elapsed"
                # On timeout the loop re-checks: the deadline may have moved while we slept.
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        interrupted, timeout=remaining, timeout_summary=f"{self._current} until {self._deadline}"
                    )
        finally:
            self._skippable = False
            self._skip_requested = False
            self._moved = False

    async def _until_unpaused(self) -> None:
        await workflow.wait_condition(
            lambda: self._paused_at is None or self._stop is not None or (self._skippable and self._skip_requested)
        )

    # ---- signals --------------------------------------------------------------------------------

    @workflow.signal
    def lead_replied(self, signal: LeadReplied) -> None:
        """The lead wrote to us: exits when the criteria say so, otherwise feeds wait-for-reply and branches."""
        self._last_reply_at = workflow.now()
        self._note("replied", detail=(signal.text or "")[:200])
        if self._definition is not None:
            reason = exit_for_reply(self._exit)
            if reason is not None:
                self._request_stop(reason, "exited")

    @workflow.signal
    def crm_stage_changed(self, signal: CrmStageChanged) -> None:
        """The lead moved in Kommo: won, lost or a listed stage ends the enrolment."""
        self._note("stage_changed", detail=f"{signal.pipeline_id}/{signal.status_id}")
        if self._definition is None:
            self._pending_stage = signal  # the exit criteria are not loaded yet
            return
        self._stage_exit(signal)

    def _stage_exit(self, signal: CrmStageChanged) -> None:
        reason = exit_for_stage(self._exit, signal.pipeline_id, signal.status_id)
        if reason is not None:
            self._request_stop(reason, "exited")

    @workflow.signal
    def lead_opted_out(self, signal: LeadOptedOut) -> None:
        """The lead unsubscribed: stop whatever the criteria say."""
        self._note("opted_out", detail=signal.reason[:200])
        self._request_stop(ExitReason.opted_out, "exited")

    def _check_pending_exits(self) -> None:
        if self._pending_stage is not None:
            self._stage_exit(self._pending_stage)
            self._pending_stage = None
        if self._last_reply_at is not None:
            reason = exit_for_reply(self._exit)
            if reason is not None:
                self._request_stop(reason, "exited")

    def _request_stop(self, reason: ExitReason, status: str) -> None:
        # The first reason wins: a cancel after a reply must not rewrite why the enrolment ended.
        if self._stop is None and not self._finished:
            self._stop, self._stop_status = reason, status

    # ---- updates --------------------------------------------------------------------------------

    def _check_target(self, enrollment_id: object) -> None:
        assert self._input is not None
        if enrollment_id is not None and enrollment_id != self._input.enrollment_id:
            raise ValueError("this run belongs to another enrolment of the lead")
        if self._finished or self._stop is not None:
            raise ValueError("the enrolment has finished")

    @workflow.update
    async def pause(self, request: PauseRequest) -> EnrollmentState:
        """Stop the clock: nothing is sent and no wait elapses until resumed."""
        self._paused_at = workflow.now()
        self._status = "paused"
        self._note("paused", detail=request.reason)
        await self._persist(status="paused")
        return self.state()

    @pause.validator
    def _validate_pause(self, request: PauseRequest) -> None:
        self._check_target(request.enrollment_id)
        if self._paused_at is not None:
            raise ValueError("the enrolment is already paused")

    @workflow.update
    async def resume(self, request: ResumeRequest) -> EnrollmentState:
        """Start the clock again; a pending wait keeps the time it had left when paused."""
        assert self._paused_at is not None
        now = workflow.now()
        if self._deadline is not None:
            self._deadline = pause_shift(self._deadline, self._paused_at, now)
            self._moved = True
        self._note("resumed", detail=f"paused {now - self._paused_at}")
        self._paused_at = None
        self._status = "active"
        await self._persist(status="active", next_action_at=self._deadline)
        return self.state()

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        self._check_target(request.enrollment_id)
        if self._paused_at is None:
            raise ValueError("the enrolment is not paused")

    @workflow.update
    async def skip_step(self, request: SkipRequest) -> EnrollmentState:
        """End the current wait now; a pending send is skipped, not sent."""
        self._skip_requested = True
        await workflow.wait_condition(lambda: not self._skip_requested or self._finished)
        return self.state()

    @skip_step.validator
    def _validate_skip(self, request: SkipRequest) -> None:
        self._check_target(request.enrollment_id)
        if not self._skippable:
            raise ValueError(f"step {self._current} is not waiting, there is nothing to skip")
        if request.step_id is not None and request.step_id != self._current:
            raise ValueError(f"the current step is {self._current}, not {request.step_id}")

    @workflow.update
    async def cancel(self, request: CancelRequest) -> EnrollmentState:
        """Stop the enrolment for good. Answers at once: a waiting run records the end in the same workflow
        task, and one busy in a send (Kommo may be retried for hours) ends as soon as the send does."""
        self._request_stop(request.reason, "cancelled")
        if not workflow.patched(CANCEL_ANSWERS_AT_ONCE):
            # Runs started before the patch waited for the end, however long an in-flight send took.
            await workflow.wait_condition(lambda: self._finished)
        return self.state()

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        self._check_target(request.enrollment_id)

    # ---- query ----------------------------------------------------------------------------------

    @workflow.query
    def state(self) -> EnrollmentState:
        """Current step, next action time and what happened so far."""
        return EnrollmentState(
            enrollment_id=self._input.enrollment_id if self._input else None,
            status=self._status,
            current_step=self._current,
            current_step_type=self._current_type,
            next_action_at=self._deadline,
            paused=self._paused_at is not None,
            exit_reason=self._stop.value if self._stop is not None else None,
            steps_executed=self._step_no,
            history=list(self._history),
        )

    # ---- bookkeeping ----------------------------------------------------------------------------

    def _note(self, kind: str, step_id: str | None = None, outcome: str = "", detail: str = "") -> None:
        self._history.append(HistoryEntry(at=workflow.now(), kind=kind, step_id=step_id, outcome=outcome,
                                          detail=detail))
        del self._history[:-HISTORY_LIMIT]

    async def _record(
        self, step: Step, key: str, kind: str, outcome: str, *, next_action_at: datetime | None = None
    ) -> None:
        """Row current and a step-log row for steps whose activity does not write its own."""
        await self._persist(
            current_step=step.id, next_action_at=next_action_at, clear_next_action=next_action_at is None,
            steps_executed=self._step_no, log=StepLog(step_id=step.id, step_key=key, kind=kind, outcome=outcome),
        )

    async def _persist(self, **changes: object) -> None:
        assert self._input is not None
        update = ProgressInput(org_id=self._input.org_id, enrollment_id=self._input.enrollment_id,
                               **changes)
        async with self._db_lock:
            await workflow.execute_local_activity_method(
                SequenceActivities.record_progress, update, start_to_close_timeout=DB_TIMEOUT
            )

    async def _complete(self) -> None:
        if self._stop is None:
            self._status = "completed"
        else:
            self._status = self._stop_status
        self._deadline = None
        self._note("finished", outcome=self._status, detail=self._stop.value if self._stop else "")
        await self._persist(status=self._status, exit_reason=self._stop.value if self._stop else None,
                            steps_executed=self._step_no, clear_next_action=True, finished=True)
        self._finished = True
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _fail(self, exc: ActivityError) -> None:
        self._status = "failed"
        self._deadline = None
        message = str(exc.cause or exc)[:2000]
        self._note("failed", self._current, detail=message)
        await self._persist(status="failed", error=message, steps_executed=self._step_no, clear_next_action=True,
                            finished=True)
        self._finished = True

    def _carry(self) -> CarriedState:
        assert self._started_at is not None
        return CarriedState(
            step_no=self._step_no, current_step=self._current, started_at=self._started_at,
            history=self._history[-CARRIED_HISTORY:], last_reply_at=self._last_reply_at,
            last_send_at=self._last_send_at, paused_at=self._paused_at, ai_follow_ups=self._ai_follow_ups,
        )

    def _restore(self, carry: CarriedState) -> None:
        self._step_no = carry.step_no
        self._current = carry.current_step
        self._started_at = carry.started_at
        self._history = list(carry.history)
        self._last_reply_at = carry.last_reply_at
        self._last_send_at = carry.last_send_at
        self._paused_at = carry.paused_at
        self._ai_follow_ups = carry.ai_follow_ups
        if carry.paused_at is not None:
            self._status = "paused"
