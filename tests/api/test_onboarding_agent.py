"""POST /api/onboarding/agent, and the whole onboarding from sign-up to a live agent over the Kommo sandbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle

from integrations.kommo.sandbox import KommoSandbox
from salesflow.settings import Settings
from tests.harness import Tenant
from tests.kommo_support import new_account
from workflows.ids import TASK_QUEUE, onboarding_id
from workflows.onboarding import OnboardingWorkflow
from workflows.onboarding_models import OnboardingInput, OnboardingProgress, OnboardingStep

AGENT = "/api/onboarding/agent"
BRIEF = {"company": "Acme {Bikes}", "product": "electric bikes", "tone": "friendly", "language": "en"}


async def _progress(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.get("/api/onboarding/status", headers=headers)
    assert r.status_code == 200, r.text
    progress: dict[str, Any] = r.json()["progress"]
    return progress


async def _until(
    client: httpx.AsyncClient, headers: dict[str, str], check: Callable[[dict[str, Any]], bool], within: float = 60
) -> dict[str, Any]:
    """Poll the status endpoint as a front end would, until ``check`` holds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        progress = await _progress(client, headers)
        if check(progress):
            return progress
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"onboarding never got there: {progress}")
        await asyncio.sleep(0.05)


def _at(step: str) -> Callable[[dict[str, Any]], bool]:
    return lambda p: p["current_step"] == step


async def test_a_brief_drafts_an_agent_with_scripts_objections_and_rules(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    r = await client.post(AGENT, json=BRIEF, headers=tenant.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    agent = body["agent"]
    assert agent["org_id"] == str(tenant.org_id)
    assert agent["status"] == "draft"
    assert agent["name"] == "Acme {Bikes} assistant"
    assert "electric bikes" in agent["persona"]
    assert (body["scripts"], body["objections"], body["rules"]) == (5, 4, 5)
    assert body["onboarding_workflow_id"] == f"onboarding/{tenant.org_id}"

    base = f"/api/agents/{agent['id']}"
    scripts = (await client.get(f"{base}/scripts", headers=tenant.headers)).json()["items"]
    assert [s["stage"] for s in scripts] == ["greeting", "qualification", "presentation", "closing", "follow_up"]
    assert scripts[0]["messages"][0].startswith("Hi! Thanks for reaching out to Acme {Bikes}")
    objections = (await client.get(f"{base}/objections", headers=tenant.headers)).json()["items"]
    assert {o["category"] for o in objections} == {"price", "timing", "competition", "decision"}
    rules = (await client.get(f"{base}/rules", headers=tenant.headers)).json()["items"]
    assert rules[0]["kind"] == "max_length"
    assert rules[0]["parameters"] == {"max_chars": 600}


@pytest.mark.parametrize(("language", "greeting"), [("ru", "Здравствуйте"), ("es", "Buenos días"),
                                                     ("pt-BR", "Bom dia")])
async def test_a_brief_is_drafted_in_the_agents_language(
    client: httpx.AsyncClient, tenant: Tenant, language: str, greeting: str
) -> None:
    body = {**BRIEF, "language": language, "tone": "formal", "agent_name": "Olga"}
    r = await client.post(AGENT, json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    agent = r.json()["agent"]
    assert (agent["language"], agent["name"], agent["tone"]) == (language, "Olga", "formal")
    scripts = (await client.get(f"/api/agents/{agent['id']}/scripts", headers=tenant.headers)).json()["items"]
    assert scripts[0]["messages"][0].startswith(greeting)


async def test_onboarding_agent_needs_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.post(AGENT, json=BRIEF)).status_code == 401


async def test_onboarding_agent_rejects_bad_briefs(client: httpx.AsyncClient, tenant: Tenant) -> None:
    cases = {
        "body.language": {**BRIEF, "language": "de"},
        "body.tone": {**BRIEF, "tone": "angry"},
        "body.company": {**BRIEF, "company": "   "},
        "body.product": {k: v for k, v in BRIEF.items() if k != "product"},
        "body.org_id": {**BRIEF, "org_id": str(uuid.uuid4())},
    }
    for field, body in cases.items():
        r = await client.post(AGENT, json=body, headers=tenant.headers)
        assert r.status_code == 400, (field, r.text)
        assert field in {e["field"] for e in r.json()["errors"]}, (field, r.json())
    listed = (await client.get("/api/agents", headers=tenant.headers)).json()["items"]
    assert listed == []


async def test_the_drafted_agent_belongs_to_the_callers_org_only(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    agent = (await client.post(AGENT, json=BRIEF, headers=tenant.headers)).json()["agent"]
    assert (await client.get(f"/api/agents/{agent['id']}", headers=other_tenant.headers)).status_code == 404
    assert (await client.get(f"/api/agents/{agent['id']}/scripts", headers=other_tenant.headers)).status_code == 404


async def test_members_may_draft_agents_as_they_may_create_them(client: httpx.AsyncClient, member: Tenant) -> None:
    r = await client.post(AGENT, json=BRIEF, headers=member.headers)
    assert r.status_code == 201
    assert r.json()["agent"]["org_id"] == str(member.org_id)


async def test_drafting_and_activating_advance_a_running_onboarding(
    client: httpx.AsyncClient, tenant: Tenant, temporal_client: Client, worker: object
) -> None:
    handle: WorkflowHandle[OnboardingWorkflow, OnboardingProgress] = await temporal_client.start_workflow(
        OnboardingWorkflow.run, OnboardingInput(org_id=tenant.org_id), id=onboarding_id(tenant.org_id),
        task_queue=TASK_QUEUE,
    )
    await _until(client, tenant.headers, _at("kommo_connected"))
    agent = (await client.post(AGENT, json=BRIEF, headers=tenant.headers)).json()["agent"]
    done = await _until(client, tenant.headers, lambda p: p["steps"][3]["done"])
    assert done["current_step"] == "kommo_connected"  # steps may complete out of order
    r = await client.patch(f"/api/agents/{agent['id']}/status", json={"status": "active"}, headers=tenant.headers)
    assert r.status_code == 200
    progress = await _until(client, tenant.headers, lambda p: p["steps"][4]["done"])
    assert [s["done"] for s in progress["steps"]] == [True, False, False, True, True]
    await handle.terminate("test over")


async def test_onboarding_goes_from_sign_up_to_a_live_agent_over_the_kommo_sandbox(
    client: httpx.AsyncClient, kommo_sandbox: KommoSandbox, settings: Settings, temporal_client: Client
) -> None:
    email = f"founder-{uuid.uuid4().hex[:8]}@example.com"
    reg = await client.post("/api/auth/register", json={
        "email": email, "password": "s3cret-passw0rd", "organization_name": "Happy Path Co"})
    assert reg.status_code == 201, reg.text
    headers = {"Authorization": f"Bearer {reg.json()['access_token']}"}
    await _until(client, headers, _at("kommo_connected"))

    # Connect Kommo the way a user does: consent on (the sandbox's) Kommo, then our OAuth callback.
    account = new_account(kommo_sandbox, settings)
    start = (await client.post("/api/integrations/kommo/oauth/start", headers=headers)).json()
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start["authorize_url"] + f"&subdomain={account.subdomain}")
    query = {k: v[0] for k, v in parse_qs(urlsplit(consent.headers["location"]).query).items()}
    callback = await client.post("/api/integrations/kommo/oauth/callback", headers=headers, json={
        "code": query["code"], "state": query["state"], "referer": query["referer"]})
    assert callback.status_code == 200, callback.text
    # The first CRM sync runs and reports pipelines_synced by itself.
    await _until(client, headers, _at("agent_created"))

    drafted = await client.post(AGENT, json={**BRIEF, "company": "Happy Path Co"}, headers=headers)
    assert drafted.status_code == 201, drafted.text
    await _until(client, headers, _at("agent_live"))
    agent_id = drafted.json()["agent"]["id"]
    live = await client.patch(f"/api/agents/{agent_id}/status", json={"status": "active"}, headers=headers)
    assert live.status_code == 200

    org_id = uuid.UUID(reg.json()["org_id"])
    result = await temporal_client.get_workflow_handle_for(OnboardingWorkflow.run, onboarding_id(org_id)).result()
    assert result.completed
    assert result.reminders == []
    final = await _progress(client, headers)
    assert final["completed"] is True
    assert final["current_step"] is None
    assert [s["step"] for s in final["steps"] if s["done"]] == [step.value for step in OnboardingStep]
