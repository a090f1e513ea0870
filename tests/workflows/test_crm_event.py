"""CrmEventWorkflow on the time-skipping test server: re-fetch through the API (despite 5xx/429), record outcome."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from db.base import utcnow
from db.models import Notification, Trigger
from db.repositories.kommo import InboxRepository, InboxRow
from integrations.kommo.sandbox import KommoSandbox
from salesflow.settings import Settings
from tests.harness import Tenant
from tests.kommo_support import connect_directly, inbox_rows
from tests.sequence_support import make_agent
from workflows.crm_event import CrmEventWorkflow
from workflows.crm_models import CrmEventInput, CrmEventResult
from workflows.ids import TASK_QUEUE, crm_event_id

Sessions = async_sessionmaker[AsyncSession]


async def _stored_event(sessions: Sessions, org_id: uuid.UUID, lead_id: int, action: str = "status") -> CrmEventInput:
    key = f"1:lead:{action}:{lead_id}:{uuid.uuid4().hex[:8]}"
    async with sessions() as session:
        ids = await InboxRepository(session).insert_new(
            org_id, "kommo_crm",
            [InboxRow(external_key=f"{org_id}:{key}", event_type=f"lead.{action}", payload={"id": lead_id},
                      workflow_id=crm_event_id(org_id, key))],
            utcnow(),
        )
        await session.commit()
    return CrmEventInput(org_id=org_id, inbox_event_id=ids[f"{org_id}:{key}"], event_key=key, entity="lead",
                         action=action, entity_id=str(lead_id), lead_kommo_id=lead_id)


async def _run(client: Client, data: CrmEventInput) -> CrmEventResult:
    return await client.execute_workflow(
        CrmEventWorkflow.run, data, id=crm_event_id(data.org_id, data.event_key), task_queue=TASK_QUEUE
    )


async def test_event_refetches_the_lead_through_5xx_and_429(
    temporal_client: Client, worker: Worker, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions,
) -> None:
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    lead = kommo_sandbox.add_lead(account, "Retry me")
    kommo_sandbox.fail_next(account, 1, 502)
    kommo_sandbox.fail_next(account, 1, 429, retry_after=2)
    result = await _run(temporal_client, await _stored_event(sessions, tenant.org_id, lead.id))
    assert result.outcome.endswith("no trigger matched")
    assert result.lead_id is not None
    [row] = await inbox_rows(sessions, tenant.org_id)
    assert row.outcome is not None
    assert row.outcome.endswith("no trigger matched")
    assert row.processed_at is not None
    assert [r.status for r in kommo_sandbox.requests_for(account)][:3] == [502, 429, 200]


async def test_an_event_for_a_lead_kommo_no_longer_has_is_recorded(
    temporal_client: Client, worker: Worker, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions,
) -> None:
    await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    result = await _run(temporal_client, await _stored_event(sessions, tenant.org_id, 999_999_999))
    assert result.outcome.startswith("lead 999999999 no longer exists in Kommo")
    deleted = await _run(temporal_client, await _stored_event(sessions, tenant.org_id, 5, action="delete"))
    assert deleted.outcome is not None
    assert "no trigger" in deleted.outcome
    assert deleted.lead_id is None


async def test_a_non_retryable_kommo_error_fails_the_run_and_is_recorded(
    temporal_client: Client, worker: Worker, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions,
) -> None:
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    lead = kommo_sandbox.add_lead(account)
    kommo_sandbox.set_paid(account, False)
    with pytest.raises(WorkflowFailureError):
        await _run(temporal_client, await _stored_event(sessions, tenant.org_id, lead.id))
    [row] = await inbox_rows(sessions, tenant.org_id)
    assert row.outcome is not None
    assert row.outcome.startswith("failed:")
    assert "402" in row.outcome
    assert len(kommo_sandbox.requests_for(account)) == 1  # 402 is not retried


async def test_a_tag_added_in_kommo_fires_its_trigger_once(
    temporal_client: Client, worker: Worker, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions,
) -> None:
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    agent_id = await make_agent(sessions, tenant.org_id)
    async with sessions() as session:
        session.add(Trigger(org_id=tenant.org_id, agent_id=agent_id, name="Hot leads", event_type="tag_added",
                            event={"type": "tag_added", "tag": "Hot"},
                            actions=[{"type": "notify", "title": "{{ name }} is hot"}]))
        await session.commit()
    remote = kommo_sandbox.add_lead(account, "Warm deal", tags=["solar"])

    first_seen = await _run(temporal_client, await _stored_event(sessions, tenant.org_id, remote.id, "update"))
    kommo_sandbox.tag_lead(account, remote.id, "hot")
    tagged = await _run(temporal_client, await _stored_event(sessions, tenant.org_id, remote.id, "update"))
    unrelated = await _run(temporal_client, await _stored_event(sessions, tenant.org_id, remote.id, "update"))

    assert "fired" not in first_seen.outcome  # "solar" was there when we first saw the lead: no "hot" yet
    assert "notify notified" in tagged.outcome
    assert unrelated.outcome == "no trigger applies to this event"
    async with sessions() as session:
        titles = (await session.scalars(select(Notification.title)
                                        .where(Notification.org_id == tenant.org_id))).all()
    assert titles == ["Warm deal is hot"]
