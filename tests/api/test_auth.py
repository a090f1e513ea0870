"""Registration, login (with its rate limit), refresh rotation and logout."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from salesflow.settings import Settings
from tests.harness import TEST_PASSWORD, Tenant


def _email() -> str:
    return f"owner-{uuid.uuid4().hex[:10]}@example.com"


async def _register(client: httpx.AsyncClient, email: str) -> httpx.Response:
    body = {"email": email, "password": "s3cret-passw0rd", "organization_name": "Acme Sales",
            "time_zone": "Europe/Madrid"}
    return await client.post("/api/auth/register", json=body)


async def test_register_creates_org_owner_tokens_and_onboarding_run(client: httpx.AsyncClient) -> None:
    r = await _register(client, _email())
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["onboarding_workflow_id"] == f"onboarding/{body['org_id']}"
    assert body["onboarding_url"].endswith(body["onboarding_workflow_id"].replace("/", "%2F"))
    me = await client.get("/api/agents", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


async def test_register_rejects_a_taken_email_with_409(client: httpx.AsyncClient) -> None:
    email = _email()
    assert (await _register(client, email)).status_code == 201
    r = await _register(client, email.upper())
    assert r.status_code == 409
    assert r.json()["title"] == "Conflict"


async def test_register_rejects_bad_input(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/auth/register", json={"email": "nope", "password": "short", "organization_name": "",
                                                      "time_zone": "Mars/Olympus"})
    assert r.status_code == 400
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"body.email", "body.password", "body.organization_name", "body.time_zone"} <= fields


async def test_login_issues_tokens_for_the_right_password_only(client: httpx.AsyncClient, tenant: Tenant) -> None:
    ok = await client.post("/api/auth/login", json={"email": tenant.email, "password": TEST_PASSWORD})
    assert ok.status_code == 200
    assert ok.json()["org_id"] == str(tenant.org_id)
    wrong = await client.post("/api/auth/login", json={"email": tenant.email, "password": "wrong-password"})
    unknown = await client.post("/api/auth/login", json={"email": _email(), "password": "wrong-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    bad = await client.post("/api/auth/login", json={"email": "x"})
    assert bad.status_code == 400


async def test_login_is_rate_limited_per_account_with_retry_after(client: httpx.AsyncClient, tenant: Tenant) -> None:
    statuses = []
    for _ in range(12):
        r = await client.post("/api/auth/login", json={"email": tenant.email, "password": "wrong-password"})
        statuses.append(r.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert int(r.headers["Retry-After"]) >= 1
    # Even the right password waits out the window: the limit protects the account, not the guess.
    r = await client.post("/api/auth/login", json={"email": tenant.email, "password": TEST_PASSWORD})
    assert r.status_code == 429


async def test_refresh_rotates_and_a_reused_token_revokes_the_login(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = (await client.post("/api/auth/login", json={"email": tenant.email, "password": TEST_PASSWORD})).json()
    second = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()["refresh_token"]
    assert rotated != first["refresh_token"]
    replay = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    # Reuse revoked the family, so the legitimately rotated token is dead too.
    after = await client.post("/api/auth/refresh", json={"refresh_token": rotated})
    assert after.status_code == 401
    assert (await client.post("/api/auth/refresh", json={"refresh_token": "x"})).status_code == 400


async def test_logout_revokes_the_refresh_token(client: httpx.AsyncClient, tenant: Tenant) -> None:
    tokens = (await client.post("/api/auth/login", json={"email": tenant.email, "password": TEST_PASSWORD})).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]})).status_code == 401
    assert (await client.post("/api/auth/logout", json={}, headers=headers)).status_code == 400
    r = await client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=headers)
    assert r.status_code == 204
    r = await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


async def test_login_is_rate_limited_per_ip_across_accounts(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], temporal_client: Client
) -> None:
    app = create_app(settings.model_copy(update={"login_attempts_per_ip": 3}), sessions=sessions,
                     temporal=temporal_client)
    ip = f"198.51.100.{uuid.uuid4().int % 250}"
    transport = httpx.ASGITransport(app=app, client=(ip, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        statuses = [(await c.post("/api/auth/login", json={"email": _email(), "password": "guess"})).status_code
                    for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
