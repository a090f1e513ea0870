"""/api/account and /api/organization/settings: the caller, password change, and org-wide defaults."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Organization, Role
from domain.schedule import BusinessHours
from tests.harness import TEST_PASSWORD, Tenant

ACCOUNT = "/api/account"
SETTINGS = "/api/organization/settings"
NEW_PASSWORD = "a much better passphrase"

TenantFactory = Callable[..., Awaitable[Tenant]]


# ---- account ------------------------------------------------------------------------------------


async def test_get_account_describes_the_caller_and_their_org(
    client: httpx.AsyncClient, tenant: Tenant, member: Tenant
) -> None:
    r = await client.get(ACCOUNT, headers=tenant.headers)
    assert r.status_code == 200
    body = r.json()
    assert (body["id"], body["email"], body["full_name"], body["role"]) == (
        str(tenant.user_id), tenant.email, "Test User", "owner"
    )
    assert body["org"]["id"] == str(tenant.org_id)
    assert body["org"]["name"].startswith("Org ")
    assert "password_hash" not in body
    as_member = (await client.get(ACCOUNT, headers=member.headers)).json()
    assert (as_member["id"], as_member["role"], as_member["org"]["id"]) == (
        str(member.user_id), "member", str(tenant.org_id)
    )


async def test_account_endpoints_require_a_token(client: httpx.AsyncClient) -> None:
    for method in ("GET", "PATCH"):
        assert (await client.request(method, ACCOUNT, json={"full_name": "x"})).status_code == 401
    for method in ("GET", "PATCH"):
        assert (await client.request(method, SETTINGS, json={"name": "x"})).status_code == 401


async def test_update_account_changes_the_name(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.patch(ACCOUNT, json={"full_name": "Ada Lovelace"}, headers=tenant.headers)
    assert r.status_code == 200
    assert r.json()["full_name"] == "Ada Lovelace"
    assert (await client.get(ACCOUNT, headers=tenant.headers)).json()["full_name"] == "Ada Lovelace"


async def test_update_account_rejects_bad_input_and_email_or_role_changes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for body in ({"email": "new@example.com"}, {"role": "owner"}, {"full_name": None}, {"full_name": "x" * 201},
                 {"new_password": NEW_PASSWORD}, {"current_password": TEST_PASSWORD},
                 {"current_password": TEST_PASSWORD, "new_password": "short"}):
        r = await client.patch(ACCOUNT, json=body, headers=tenant.headers)
        assert r.status_code == 400, body
    assert (await client.get(ACCOUNT, headers=tenant.headers)).json()["email"] == tenant.email


async def test_password_change_needs_the_current_password_and_signs_out_other_sessions(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    login = await client.post("/api/auth/login", json={"email": tenant.email, "password": TEST_PASSWORD})
    refresh_token = login.json()["refresh_token"]
    wrong = await client.patch(ACCOUNT, json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
                               headers=tenant.headers)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["field"] == "body.current_password"
    ok = await client.patch(ACCOUNT, json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
                            headers=tenant.headers)
    assert ok.status_code == 200
    old = await client.post("/api/auth/login", json={"email": tenant.email, "password": TEST_PASSWORD})
    new = await client.post("/api/auth/login", json={"email": tenant.email, "password": NEW_PASSWORD})
    assert (old.status_code, new.status_code) == (401, 200)
    assert (await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})).status_code == 401


# ---- organisation settings ----------------------------------------------------------------------


WEEK = {
    "monday": [{"start": "13:00", "end": "18:00"}, {"start": "09:00", "end": "12:00"}],
    "saturday": [{"start": "10:00", "end": "24:00"}],
}


async def test_settings_default_to_weekday_office_hours(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.get(SETTINGS, headers=tenant.headers)
    assert r.status_code == 200
    body = r.json()
    assert (body["time_zone"], body["locale"], body["holidays"]) == ("Europe/Berlin", "en", [])
    assert body["business_hours"]["monday"] == [{"start": "09:00", "end": "18:00"}]
    assert body["business_hours"]["sunday"] == []


async def test_owner_updates_settings_and_sequences_can_read_the_hours(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant, other_tenant: Tenant
) -> None:
    patch = {"name": "Acme GmbH", "time_zone": "America/Sao_Paulo", "locale": "pt-BR", "business_hours": WEEK,
             "holidays": ["2026-12-25", "2026-01-01", "2026-12-25"]}
    r = await client.patch(SETTINGS, json=patch, headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["time_zone"], body["locale"]) == ("Acme GmbH", "America/Sao_Paulo", "pt-BR")
    assert body["holidays"] == ["2026-01-01", "2026-12-25"]  # de-duplicated and sorted
    hours = body["business_hours"]
    assert hours["monday"] == [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "18:00"}]
    assert hours["saturday"] == [{"start": "10:00", "end": "24:00"}]
    assert hours["tuesday"] == []  # a day left out is closed
    assert (await client.get(SETTINGS, headers=tenant.headers)).json() == body
    # Only what was sent changes.
    renamed = await client.patch(SETTINGS, json={"name": "Acme"}, headers=tenant.headers)
    assert renamed.json()["business_hours"] == hours
    # What is stored is what domain.schedule reads.
    async with sessions() as session:
        org = await session.get(Organization, tenant.org_id)
        assert org is not None
        window = BusinessHours(days=org.business_hours, holidays=org.holidays)
    assert window.contains(datetime(2026, 11, 30, 12, 30)) is False  # Monday lunch break
    assert window.contains(datetime(2026, 11, 30, 13, 0)) is True
    assert window.contains(datetime(2026, 12, 5, 23, 59, 59)) is True  # Saturday until midnight
    assert window.is_holiday(date(2026, 12, 25))
    theirs = (await client.get(SETTINGS, headers=other_tenant.headers)).json()
    assert theirs["name"] != "Acme"


async def test_admins_may_update_settings_and_members_may_only_read(
    client: httpx.AsyncClient, make_tenant: TenantFactory, tenant: Tenant, member: Tenant
) -> None:
    admin = await make_tenant(role=Role.admin, org_id=tenant.org_id)
    assert (await client.patch(SETTINGS, json={"locale": "de"}, headers=admin.headers)).status_code == 200
    forbidden = await client.patch(SETTINGS, json={"locale": "fr"}, headers=member.headers)
    assert forbidden.status_code == 403
    assert forbidden.json()["title"] == "Forbidden"
    read = await client.get(SETTINGS, headers=member.headers)
    assert read.status_code == 200
    assert read.json()["locale"] == "de"


async def test_settings_bad_input_is_a_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    bad_bodies = [
        {"time_zone": "Mars/Olympus"},
        {"time_zone": "localtime"},
        {"locale": "english"},
        {"name": ""},
        {"name": None},
        {"plan": "enterprise"},
        {"slug": "stolen"},
        {"holidays": ["2026-02-30"]},
        {"business_hours": {"funday": []}},
        {"business_hours": {"monday": [{"start": "9:00", "end": "17:00"}]}},
        {"business_hours": {"monday": [{"start": "18:00", "end": "09:00"}]}},
        {"business_hours": {"monday": [{"start": "09:00", "end": "09:00"}]}},
        {"business_hours": {"monday": [{"start": "24:00", "end": "24:00"}]}},
        {"business_hours": {"monday": [{"start": "09:00", "end": "13:00"}, {"start": "12:00", "end": "18:00"}]}},
        {"business_hours": {"monday": [{"start": "09:00"}]}},
    ]
    for body in bad_bodies:
        r = await client.patch(SETTINGS, json=body, headers=tenant.headers)
        assert r.status_code == 400, body
    overlap = await client.patch(SETTINGS, json=bad_bodies[-2], headers=tenant.headers)
    assert overlap.json()["errors"][0]["field"] == "body.business_hours.monday"
    assert (await client.get(SETTINGS, headers=tenant.headers)).json()["time_zone"] == "Europe/Berlin"
