"""OnboardingWorkflow on the time-skipping test server, read through the API."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from tests.harness import Tenant
from workflows.ids import TASK_QUEUE, onboarding_id
from workflows.onboarding import OnboardingWorkflow
from workflows.onboarding_models import OnboardingInput, OnboardingStep, StepCompleted


async def test_registration_starts_onboarding_with_the_account_step_done(client: httpx.AsyncClient) -> None:
    body = {"email": f"o-{uuid.uuid4().hex[:8]}@example.com", "password": "s3cret-passw0rd",
            "organization_name": "Onboard Co"}
    reg = (await client.post("/api/auth/register", json=body)).json()
    headers = {"Authorization": f"Bearer {reg['access_token']}"}
    # The first step is an activity; poll the query the way a front end would.
    for _ in range(100):
        status = (await client.get("/api/onboarding/status", headers=headers)).json()
        if status["progress"]["current_step"] != "account_created":
            break
        await asyncio.sleep(0.05)
    assert status["workflow_id"] == f"onboarding/{reg['org_id']}"
    steps = {s["step"]: s["done"] for s in status["progress"]["steps"]}
    assert steps["account_created"] is True
    assert steps["kommo_connected"] is False
    assert status["progress"]["current_step"] == "kommo_connected"


async def test_onboarding_status_needs_auth_and_a_run(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await client.get("/api/onboarding/status")).status_code == 401
    # The tenant fixture is created directly in the database, so it never started a run.
    r = await client.get("/api/onboarding/status", headers=tenant.headers)
    assert r.status_code == 404


async def test_onboarding_completes_when_every_step_is_signalled(temporal_client: Client, tenant: Tenant) -> None:
    handle = await temporal_client.start_workflow(
        OnboardingWorkflow.run, OnboardingInput(org_id=tenant.org_id),
        id=onboarding_id(tenant.org_id), task_queue=TASK_QUEUE,
    )
    for step in reversed(list(OnboardingStep)[1:]):
        await handle.signal(OnboardingWorkflow.step_completed, StepCompleted(step=step))
    result = await handle.result()
    assert result.completed is True
    assert all(s.done for s in result.steps)


async def test_onboarding_of_an_unknown_org_fails_without_retrying(temporal_client: Client, worker: object) -> None:
    org_id = uuid.uuid4()
    handle = await temporal_client.start_workflow(
        OnboardingWorkflow.run, OnboardingInput(org_id=org_id), id=onboarding_id(org_id), task_queue=TASK_QUEUE,
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
