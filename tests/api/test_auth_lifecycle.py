"""Account lifecycle: password reset over real SMTP, the current session, tenant redirect, test-login."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from db.models import EmailOutbox, EmailStatus, PasswordResetToken
from db.repositories.email import REDACTED
from integrations.smtp.sandbox import CapturedMessage, SmtpSandbox
from salesflow.settings import Settings
from tests.harness import TEST_PASSWORD, RouteRecorder, Tenant

RESET = "/api/auth/reset-password/request"
CONFIRM = "/api/auth/reset-password/confirm"
REDIRECT = "/api/auth/get-tenant-redirect"
ClientFactory = Callable[..., httpx.AsyncClient]
NEW_PASSWORD = "a-brand-new-passw0rd"


def _email() -> str:
    return f"nobody-{uuid.uuid4().hex[:10]}@example.com"


def _token_of(message: CapturedMessage) -> str:
    found = re.search(r"token=([A-Za-z0-9_-]+)", message.text())
    assert found is not None, message.text()
    return found.group(1)


async def _reset_token(client: httpx.AsyncClient, smtp: SmtpSandbox, email: str) -> str:
    before = len(smtp.to(email))
    r = await client.post(RESET, json={"email": email})
    assert r.status_code == 202, r.text
    messages = await smtp.wait_for(lambda m: email in m.rcpt_to, count=before + 1)
    return _token_of(messages[-1])


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


@pytest.fixture
async def own_ip_client(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], temporal_client: Client
) -> AsyncIterator[ClientFactory]:
    """A factory of clients for an app with tighter limits, each on its own client address."""

    clients: list[httpx.AsyncClient] = []

    def make(**overrides: object) -> httpx.AsyncClient:
        app = create_app(settings.model_copy(update=overrides), sessions=sessions, temporal=temporal_client)
        ip = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 4242)), base_url="http://t")
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


# ---- password reset ---------------------------------------------------------------------------------


async def test_reset_request_answers_the_same_for_known_and_unknown_emails(
    client: httpx.AsyncClient, tenant: Tenant, smtp_sandbox: SmtpSandbox
) -> None:
    known = await client.post(RESET, json={"email": tenant.email.upper()})
    unknown = await client.post(RESET, json={"email": _email()})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert known.headers["content-type"] == unknown.headers["content-type"]
    [message] = await smtp_sandbox.wait_for(lambda m: tenant.email in m.rcpt_to)
    assert message.subject == "Reset your salesflow password"
    assert "/reset-password?token=" in message.text()
    assert "/reset-password?token=" in message.html()


async def test_reset_email_goes_through_the_outbox_and_its_secret_is_redacted_after_delivery(
    client: httpx.AsyncClient, tenant: Tenant, smtp_sandbox: SmtpSandbox, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _reset_token(client, smtp_sandbox, tenant.email)
    # The message reaches the SMTP server a moment before the activity commits the row as sent.
    for _ in range(100):
        async with sessions() as session:
            rows = (await session.scalars(select(EmailOutbox).where(EmailOutbox.org_id == tenant.org_id))).all()
        if rows and rows[0].status != EmailStatus.queued:
            break
        await asyncio.sleep(0.05)
    [row] = rows
    assert row.template_key == "password_reset"
    assert row.to_address == tenant.email
    assert row.status == EmailStatus.sent
    assert row.attempts == 1
    assert row.body_text == REDACTED
    assert "token=" not in row.body_html


async def test_reset_token_sets_the_password_once_and_revokes_every_session(
    client: httpx.AsyncClient, tenant: Tenant, smtp_sandbox: SmtpSandbox
) -> None:
    session_before = (await _login(client, tenant.email, TEST_PASSWORD)).json()
    token = await _reset_token(client, smtp_sandbox, tenant.email)

    r = await client.post(CONFIRM, json={"token": token, "new_password": NEW_PASSWORD})
    assert r.status_code == 204, r.text
    assert (await _login(client, tenant.email, TEST_PASSWORD)).status_code == 401
    assert (await _login(client, tenant.email, NEW_PASSWORD)).status_code == 200
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": session_before["refresh_token"]})
    assert refreshed.status_code == 401

    again = await client.post(CONFIRM, json={"token": token, "new_password": "yet-another-passw0rd"})
    assert again.status_code == 400
    assert again.json()["errors"][0]["field"] == "body.token"
    assert (await _login(client, tenant.email, NEW_PASSWORD)).status_code == 200


async def test_only_the_newest_reset_link_works(
    client: httpx.AsyncClient, tenant: Tenant, smtp_sandbox: SmtpSandbox
) -> None:
    first = await _reset_token(client, smtp_sandbox, tenant.email)
    second = await _reset_token(client, smtp_sandbox, tenant.email)
    assert first != second
    assert (await client.post(CONFIRM, json={"token": first, "new_password": NEW_PASSWORD})).status_code == 400
    assert (await client.post(CONFIRM, json={"token": second, "new_password": NEW_PASSWORD})).status_code == 204


async def test_an_expired_or_wrong_reset_token_is_a_400(
    client: httpx.AsyncClient, tenant: Tenant, smtp_sandbox: SmtpSandbox, sessions: async_sessionmaker[AsyncSession]
) -> None:
    token = await _reset_token(client, smtp_sandbox, tenant.email)
    async with sessions() as session:
        await session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.user_id == tenant.user_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    expired = await client.post(CONFIRM, json={"token": token, "new_password": NEW_PASSWORD})
    wrong = await client.post(CONFIRM, json={"token": "x" * 43, "new_password": NEW_PASSWORD})
    assert expired.status_code == wrong.status_code == 400
    assert expired.json()["detail"] == wrong.json()["detail"]
    assert (await _login(client, tenant.email, TEST_PASSWORD)).status_code == 200


async def test_reset_rejects_bad_input(client: httpx.AsyncClient) -> None:
    assert (await client.post(RESET, json={"email": "not-an-email"})).status_code == 400
    assert (await client.post(RESET, json={})).status_code == 400
    short = await client.post(CONFIRM, json={"token": "x" * 43, "new_password": "short"})
    assert short.status_code == 400
    assert {e["field"] for e in short.json()["errors"]} == {"body.new_password"}
    assert (await client.post(CONFIRM, json={"new_password": NEW_PASSWORD})).status_code == 400


async def test_reset_requests_are_rate_limited_per_email_whether_or_not_it_exists(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    for email in (tenant.email, _email()):
        statuses = [(await client.post(RESET, json={"email": email})).status_code
                    for _ in range(settings.password_reset_per_email + 1)]
        assert statuses == [202] * settings.password_reset_per_email + [429]


async def test_reset_requests_are_rate_limited_per_ip(own_ip_client: ClientFactory) -> None:
    c = own_ip_client(password_reset_per_ip=2)
    statuses = [(await c.post(RESET, json={"email": _email()})).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    r = await c.post(RESET, json={"email": _email()})
    assert int(r.headers["Retry-After"]) >= 1
    confirm = [(await c.post(CONFIRM, json={"token": "x" * 43, "new_password": NEW_PASSWORD})).status_code
               for _ in range(3)]
    assert confirm == [400, 400, 429]


# ---- refresh reuse detection ----------------------------------------------------------------------


async def test_refresh_reuse_revokes_only_that_login_family(client: httpx.AsyncClient, tenant: Tenant) -> None:
    laptop = (await _login(client, tenant.email, TEST_PASSWORD)).json()
    phone = (await _login(client, tenant.email, TEST_PASSWORD)).json()
    rotated = (await client.post("/api/auth/refresh", json={"refresh_token": laptop["refresh_token"]})).json()
    replay = await client.post("/api/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    assert replay.status_code == 401
    assert "reuse" in replay.json()["detail"].lower()
    assert (await client.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})).status_code == 401
    # The other device logged in separately: its family is untouched.
    assert (await client.post("/api/auth/refresh", json={"refresh_token": phone["refresh_token"]})).status_code == 200


# ---- session ----------------------------------------------------------------------------------------


async def test_session_describes_the_caller_and_when_the_token_expires(
    client: httpx.AsyncClient, tenant: Tenant, member: Tenant, settings: Settings
) -> None:
    tokens = (await _login(client, tenant.email, TEST_PASSWORD)).json()
    r = await client.get("/api/auth/session", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["id"] == str(tenant.user_id)
    assert body["user"]["email"] == tenant.email
    assert body["organization"]["id"] == str(tenant.org_id)
    assert body["organization"]["app_url"] == settings.org_app_url(body["organization"]["slug"])
    assert body["role"] == "owner"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=settings.access_token_ttl_seconds + 5)
    as_member = (await client.get("/api/auth/session", headers=member.headers)).json()
    assert as_member["role"] == "member"
    assert as_member["organization"]["id"] == str(tenant.org_id)


async def test_session_needs_a_valid_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/auth/session")).status_code == 401
    r = await client.get("/api/auth/session", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_session_of_a_token_whose_org_is_gone_is_a_401(client: httpx.AsyncClient, settings: Settings) -> None:
    from api.security import AccessClaims, issue_access_token

    ghost = issue_access_token(AccessClaims(uuid.uuid4(), uuid.uuid4(), "owner"), settings.jwt_secret, 60)
    r = await client.get("/api/auth/session", headers={"Authorization": f"Bearer {ghost}"})
    assert r.status_code == 401


# ---- tenant redirect -------------------------------------------------------------------------------


async def test_a_known_slug_redirects_to_its_app_and_an_unknown_one_to_the_login_page(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    session = (await client.get("/api/auth/session", headers=tenant.headers)).json()
    slug = session["organization"]["slug"]
    known = await client.get(REDIRECT, params={"slug": slug.upper()})
    unknown = await client.get(REDIRECT, params={"slug": f"no-such-{uuid.uuid4().hex[:8]}"})
    assert known.status_code == unknown.status_code == 200
    assert known.json() == {"redirect_url": settings.org_app_url(slug)}
    assert unknown.json() == {"redirect_url": settings.login_url()}


async def test_tenant_redirect_by_email_does_not_reveal_whether_the_account_exists(client: httpx.AsyncClient) -> None:
    email = _email()
    before = await client.get(REDIRECT, params={"email": email})
    body = {"email": email, "password": "s3cret-passw0rd", "organization_name": "Redirect Co"}
    assert (await client.post("/api/auth/register", json=body)).status_code == 201
    after = await client.get(REDIRECT, params={"email": email})
    # The same address, before and after it has an account: byte-for-byte the same answer.
    assert before.status_code == after.status_code == 200
    assert before.content == after.content
    assert before.headers["content-type"] == after.headers["content-type"]
    assert set(after.json()) == {"redirect_url"}


async def test_tenant_redirect_rejects_bad_input(client: httpx.AsyncClient) -> None:
    assert (await client.get(REDIRECT)).status_code == 400
    assert (await client.get(REDIRECT, params={"email": _email(), "slug": "acme"})).status_code == 400
    assert (await client.get(REDIRECT, params={"email": "nope"})).status_code == 400
    assert (await client.get(REDIRECT, params={"slug": "../etc"})).status_code == 400


async def test_tenant_redirect_is_rate_limited_per_ip(own_ip_client: ClientFactory) -> None:
    c = own_ip_client(tenant_redirect_per_ip=2)
    statuses = [(await c.get(REDIRECT, params={"slug": f"s{i}"})).status_code for i in range(3)]
    assert statuses == [200, 200, 429]


# ---- test-login -------------------------------------------------------------------------------------


async def test_test_login_is_absent_outside_development(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.get("/api/test-login", params={"email": tenant.email})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "access_token" not in r.text


async def test_test_login_signs_in_seeded_users_in_development(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], temporal_client: Client,
    route_recorder: RouteRecorder, tenant: Tenant,
) -> None:
    app = create_app(settings.model_copy(update={"environment": "development"}), sessions=sessions,
                     temporal=temporal_client)
    recorder = RouteRecorder(app)
    transport = httpx.ASGITransport(app=recorder, client=("203.0.113.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://dev") as dev:
        as_tenant = await dev.get("/api/test-login", params={"email": tenant.email})
        assert as_tenant.status_code == 200, as_tenant.text
        assert as_tenant.json()["user_id"] == str(tenant.user_id)
        headers = {"Authorization": f"Bearer {as_tenant.json()['access_token']}"}
        assert (await dev.get("/api/auth/session", headers=headers)).json()["user"]["email"] == tenant.email

        demo = await dev.get("/api/test-login")
        demo_again = await dev.get("/api/test-login")
        assert demo.status_code == demo_again.status_code == 200
        assert demo.json()["user_id"] == demo_again.json()["user_id"]

        assert (await dev.get("/api/test-login", params={"email": _email()})).status_code == 404
        assert (await dev.get("/api/test-login", params={"email": "nope"})).status_code == 400
    # The gate counts routes reached through any app built by the tests.
    route_recorder.seen |= recorder.seen
