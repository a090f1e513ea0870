"""POST /api/jobs and GET /api/jobs/status: background work started on request, followed in Temporal."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from integrations.kommo.sandbox import KommoSandbox
from salesflow.settings import Settings
from tests.harness import Tenant
from tests.kommo_support import connect_directly, eventually

Sessions = async_sessionmaker[AsyncSession]


async def test_a_sync_job_runs_to_completion_and_reports_it(
    client: httpx.AsyncClient, tenant: Tenant, sessions: Sessions, settings: Settings, kommo_sandbox: KommoSandbox
) -> None:
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    kommo_sandbox.add_lead(account, "Synced lead")
    r = await client.post("/api/jobs", json={"type": "crm_full_sync"}, headers=tenant.headers)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["job_id"] == f"crm-sync/{tenant.org_id}"
    assert (job["type"], job["status"]) == ("crm_sync", "running")
    assert job["temporal_url"].endswith(f"crm-sync%2F{tenant.org_id}")

    async def completed() -> bool:
        r = await client.get("/api/jobs/status", params={"job_id": job["job_id"]}, headers=tenant.headers)
        return r.json()["status"] == "completed"

    await eventually(completed, within=60)
    tick = await client.post("/api/jobs", json={"type": "trigger_clock"}, headers=tenant.headers)
    assert tick.status_code == 202, tick.text
    assert tick.json()["job_id"].startswith(f"trigger-clock/{tenant.org_id}/job-")


async def test_jobs_are_the_organisations_own_and_need_kommo_and_an_admin(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, member: Tenant, sessions: Sessions,
    settings: Settings, kommo_sandbox: KommoSandbox,
) -> None:
    assert (await client.post("/api/jobs", json={"type": "crm_sync"}, headers=tenant.headers)).status_code == 409
    await connect_directly(sessions, settings, kommo_sandbox, other_tenant.org_id)
    theirs = (await client.post("/api/jobs", json={"type": "crm_sync"}, headers=other_tenant.headers)).json()
    for job_id in (theirs["job_id"], f"crm-sync/{uuid.uuid4()}", "onboarding", "cron/backup",
                   f"crm-sync/{tenant.org_id}"):
        r = await client.get("/api/jobs/status", params={"job_id": job_id}, headers=tenant.headers)
        assert r.status_code == 404, (job_id, r.text)
    assert (await client.post("/api/jobs", json={"type": "crm_sync"}, headers=member.headers)).status_code == 403
    for body in ({}, {"type": "format_disk"}, {"type": "crm_sync", "now": True}):
        assert (await client.post("/api/jobs", json=body, headers=tenant.headers)).status_code == 400
    assert (await client.get("/api/jobs/status", headers=tenant.headers)).status_code == 400
    assert (await client.post("/api/jobs", json={"type": "crm_sync"})).status_code == 401
    assert (await client.get("/api/jobs/status", params={"job_id": "x"})).status_code == 401
