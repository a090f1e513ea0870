"""Onboarding reminders on a time-skipping server of their own: days pass in seconds, mail lands in the SMTP sandbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from db.models import EmailOutbox, EmailStatus
from db.repositories.email import EmailOutboxRepository
from integrations.smtp.sandbox import SmtpSandbox
from tests.harness import Tenant
from workflows.email_delivery import EmailDeliveryWorkflow
from workflows.ids import TASK_QUEUE, onboarding_id
from workflows.onboarding import OnboardingWorkflow
from workflows.onboarding_models import OnboardingInput, OnboardingProgress, OnboardingStep, StepCompleted

HISTORIES = Path(__file__).parent / "histories"
Handle = WorkflowHandle[OnboardingWorkflow, OnboardingProgress]


async def _start(client: Client, org_id: uuid.UUID) -> Handle:
    return await client.start_workflow(
        OnboardingWorkflow.run, OnboardingInput(org_id=org_id), id=onboarding_id(org_id), task_queue=TASK_QUEUE,
    )


async def _until(handle: Handle, check: Callable[[OnboardingProgress], bool]) -> OnboardingProgress:
    """Poll the progress query (real time) until ``check`` holds; the run's activities take real time too."""
    for _ in range(600):
        progress = await handle.query(OnboardingWorkflow.progress)
        if check(progress):
            return progress
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition never held; last progress: {progress}")


async def _outbox(sessions: async_sessionmaker[AsyncSession], org_id: uuid.UUID) -> list[EmailOutbox]:
    """The org's outbox once no row is still being delivered (delivery runs are abandoned children)."""
    for _ in range(100):
        async with sessions() as session:
            rows = await EmailOutboxRepository(session, org_id).list_for_org()
        if all(row.status != EmailStatus.queued for row in rows):
            break
        await asyncio.sleep(0.05)
    return rows


async def _signal(handle: Handle, *steps: OnboardingStep) -> None:
    for step in steps:
        await handle.signal(OnboardingWorkflow.step_completed, StepCompleted(step=step))


async def test_a_stalled_onboarding_gets_exactly_two_reminders_at_day_1_and_day_3(
    own_temporal: WorkflowEnvironment, tenant: Tenant, smtp_sandbox: SmtpSandbox,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    workflow_env = own_temporal
    handle = await _start(workflow_env.client, tenant.org_id)
    progress = await _until(handle, lambda p: p.current_step == OnboardingStep.kommo_connected)
    started = progress.steps[0].completed_at
    assert started is not None

    await workflow_env.sleep(timedelta(hours=23))
    assert (await handle.query(OnboardingWorkflow.progress)).reminders == []
    await workflow_env.sleep(timedelta(hours=2))
    [day1] = await smtp_sandbox.wait_for(lambda m: tenant.email in m.rcpt_to)
    assert day1.subject.endswith("next step, Connect Kommo")

    await workflow_env.sleep(timedelta(days=2))
    messages = await smtp_sandbox.wait_for(lambda m: tenant.email in m.rcpt_to, count=2)
    assert "waiting for Connect Kommo" in messages[1].subject
    assert "reply to this email" in messages[1].text()

    # Stalled for good: no third reminder however long it waits.
    await workflow_env.sleep(timedelta(days=3))
    progress = await handle.query(OnboardingWorkflow.progress)
    assert [(r.step, r.day) for r in progress.reminders] == [
        (OnboardingStep.kommo_connected, 1), (OnboardingStep.kommo_connected, 3)
    ]
    offsets = [r.at - started for r in progress.reminders]
    assert [round(o / timedelta(minutes=1)) for o in offsets] == [24 * 60, 3 * 24 * 60]

    await _signal(handle, *list(OnboardingStep)[1:])
    result = await handle.result()
    assert result.completed
    assert len(result.reminders) == 2
    rows = await _outbox(sessions, tenant.org_id)
    assert [(row.template_key, row.status, row.to_address) for row in rows] == [
        ("onboarding_reminder_day1", EmailStatus.sent, tenant.email),
        ("onboarding_reminder_day3", EmailStatus.sent, tenant.email),
    ]
    assert [row.id for row in rows] == [i for r in result.reminders for i in r.outbox_ids]
    assert len(smtp_sandbox.to(tenant.email)) == 2


async def test_progress_cancels_pending_reminders_and_a_finished_run_sends_none(
    own_temporal: WorkflowEnvironment, tenant: Tenant, smtp_sandbox: SmtpSandbox,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    workflow_env = own_temporal
    handle = await _start(workflow_env.client, tenant.org_id)
    await _until(handle, lambda p: p.current_step == OnboardingStep.kommo_connected)
    await workflow_env.sleep(timedelta(hours=20))
    # pipelines_synced implies the connection, and agent_live the agent: out-of-order signals count.
    await _signal(handle, OnboardingStep.pipelines_synced)
    await _until(handle, lambda p: p.current_step == OnboardingStep.agent_created)
    # Day 1 of the run, but only 10 hours into the new step: the old step's reminder timer is gone.
    await workflow_env.sleep(timedelta(hours=10))
    assert (await handle.query(OnboardingWorkflow.progress)).reminders == []
    await _signal(handle, OnboardingStep.agent_live)
    result = await handle.result()
    assert result.completed
    assert all(step.done for step in result.steps)
    await workflow_env.sleep(timedelta(days=4))
    await asyncio.sleep(0.3)
    assert result.reminders == []
    assert await _outbox(sessions, tenant.org_id) == []
    assert smtp_sandbox.to(tenant.email) == []


async def test_reminders_go_to_every_owner_with_the_organisations_own_template(
    client: httpx.AsyncClient, own_temporal: WorkflowEnvironment, tenant: Tenant,
    make_tenant: Callable[..., Awaitable[Tenant]], smtp_sandbox: SmtpSandbox,
) -> None:
    workflow_env = own_temporal
    co_owner = await make_tenant(org_id=tenant.org_id)
    template = {"name": "Day 1", "key": "onboarding_reminder_day1", "subject": "Hey {{ user_name }}: {{ step_title }}",
                "body_text": "Go to {{ app_url }}", "body_html": "<p>{{ step_hint }}</p>",
                "variables": ["user_name", "step_title", "app_url", "step_hint"]}
    r = await client.post("/api/email-templates", json=template, headers=tenant.headers)
    assert r.status_code == 201, r.text

    handle = await _start(workflow_env.client, tenant.org_id)
    await _until(handle, lambda p: p.current_step == OnboardingStep.kommo_connected)
    await workflow_env.sleep(timedelta(days=1, minutes=1))
    owners = {tenant.email, co_owner.email}
    messages = await smtp_sandbox.wait_for(lambda m: bool(owners & set(m.rcpt_to)), count=2)
    assert {m.subject for m in messages} == {"Hey Test User: Connect Kommo"}
    assert all("/o/org-" in m.text() for m in messages)
    await _signal(handle, *list(OnboardingStep)[1:])
    await handle.result()


@pytest.mark.parametrize(
    "name",
    ["onboarding_v1_completed",  # recorded before reminders existed: the patch keeps its old path
     "onboarding_v2_reminders_completed"],  # two reminders, a third for the next step, then completion
)
async def test_recorded_histories_replay_on_todays_code(name: str) -> None:
    """A change to the workflow that would break runs in flight fails here (non-determinism)."""
    history = json.loads((HISTORIES / f"{name}.json").read_text())
    workflow_id = "onboarding/recorded"
    replayer = Replayer(workflows=[OnboardingWorkflow, EmailDeliveryWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(WorkflowHistory.from_json(workflow_id, history))
