"""CrmSyncWorkflow on the time-skipping test server against the Kommo sandbox (including 5xx and 429)."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from db.repositories.kommo import CrmMirrorRepository
from integrations.kommo.sandbox import KommoSandbox
from salesflow.settings import Settings
from tests.harness import Tenant
from tests.kommo_support import connect_directly, get_connection
from workflows.crm_models import CrmSyncInput, CrmSyncResult
from workflows.crm_sync import CrmSyncWorkflow
from workflows.ids import TASK_QUEUE, crm_sync_id, onboarding_id
from workflows.onboarding import OnboardingWorkflow
from workflows.onboarding_models import OnboardingInput, OnboardingStep

Sessions = async_sessionmaker[AsyncSession]
DAY = 86400


async def _sync(client: Client, org_id: uuid.UUID, *, full: bool = False) -> CrmSyncResult:
    return await client.execute_workflow(
        CrmSyncWorkflow.run, CrmSyncInput(org_id=org_id, full=full), id=crm_sync_id(org_id), task_queue=TASK_QUEUE,
    )


async def _counts(sessions: Sessions, org_id: uuid.UUID) -> dict[str, int]:
    async with sessions() as session:
        return await CrmMirrorRepository(session, org_id).counts()


async def test_sync_mirrors_the_account_idempotently_and_then_incrementally(
    temporal_client: Client, worker: Worker, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions,
) -> None:
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    kommo_sandbox.add_pipeline(account, "Partners", ["New", "Talking"])
    old = int(time.time()) - 3 * DAY
    for i in range(3):
        kommo_sandbox.add_lead(account, f"Old lead {i}", created_at=old, updated_at=old)

    first = await _sync(temporal_client, tenant.org_id)
    assert (first.pipelines, first.users, first.custom_fields, first.leads) == (2, 2, 4, 3)
    assert first.incremental_since is None
    assert first.schedule == "unsupported"
    after_first = await _counts(sessions, tenant.org_id)
    assert after_first == {"pipelines": 2, "statuses": 10, "users": 2, "custom_fields": 4, "leads": 3}
    connection = await get_connection(sessions, tenant.org_id)
    assert connection is not None
    assert connection.last_synced_at is not None

    kommo_sandbox.add_lead(account, "Fresh lead")
    second = await _sync(temporal_client, tenant.org_id)
    # Only the lead changed since the checkpoint was fetched; everything else was rewritten in place.
    assert second.leads == 1
    assert second.incremental_since is not None
    assert await _counts(sessions, tenant.org_id) == {**after_first, "leads": 4}
    lead_queries = [r.query for r in kommo_sandbox.requests_for(account) if r.path == "/api/v4/leads"]
    assert "filter%5Bupdated_at%5D%5Bfrom%5D" in lead_queries[-1]

    full = await _sync(temporal_client, tenant.org_id, full=True)
    assert full.leads == 4
    assert await _counts(sessions, tenant.org_id) == {**after_first, "leads": 4}


async def test_sync_absorbs_kommo_5xx_and_429_through_temporal_retries(
    temporal_client: Client, worker: Worker, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions,
) -> None:
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    kommo_sandbox.add_lead(account, "Only lead")
    kommo_sandbox.fail_next(account, 1, 503)
    kommo_sandbox.fail_next(account, 2, 429, retry_after=1)
    result = await _sync(temporal_client, tenant.org_id)
    assert (result.pipelines, result.users, result.custom_fields, result.leads) == (1, 2, 4, 1)
    statuses = [r.status for r in kommo_sandbox.requests_for(account)]
    assert statuses.count(503) == 1
    assert statuses.count(429) == 2


async def test_a_finished_sync_completes_the_onboarding_step(
    temporal_client: Client, worker: Worker, tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings,
    sessions: Sessions,
) -> None:
    await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    onboarding = await temporal_client.start_workflow(
        OnboardingWorkflow.run, OnboardingInput(org_id=tenant.org_id), id=onboarding_id(tenant.org_id),
        task_queue=TASK_QUEUE,
    )
    await _sync(temporal_client, tenant.org_id)
    progress = await onboarding.query(OnboardingWorkflow.progress)
    assert {s.step: s.done for s in progress.steps}[OnboardingStep.pipelines_synced] is True
    await onboarding.terminate("test done")


async def test_sync_of_an_unconnected_org_fails_without_retrying(
    temporal_client: Client, worker: Worker, tenant: Tenant
) -> None:
    with pytest.raises(WorkflowFailureError):
        await _sync(temporal_client, tenant.org_id)
