"""/api/notifications: visibility (own + org-wide), read state, deletion and bulk actions across tenants."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities, NotifyInput
from tests.harness import Tenant

MISSING = "00000000-0000-4000-8000-000000000000"
BASE = "/api/notifications"
Sessions = async_sessionmaker[AsyncSession]


async def _notify(sessions: Sessions, tenant: Tenant, title: str = "Heads up", *, to: Tenant | None = None,
                  kind: str = "info") -> str:
    """Create a notification the way workflows do: through the notify activity."""
    data = NotifyInput(org_id=tenant.org_id, kind=kind, title=title, user_id=to.user_id if to else None)
    return await ActivityEnvironment().run(NotifyActivities(sessions).notify, data)


async def _titles(client: httpx.AsyncClient, tenant: Tenant, **params: str) -> list[str]:
    r = await client.get(BASE, params=params, headers=tenant.headers)
    assert r.status_code == 200, r.text
    return sorted(n["title"] for n in r.json()["items"])


async def _get(client: httpx.AsyncClient, tenant: Tenant, notification_id: str) -> dict[str, Any] | None:
    items = (await client.get(BASE, params={"limit": 200}, headers=tenant.headers)).json()["items"]
    return next((n for n in items if n["id"] == notification_id), None)


async def test_list_shows_own_and_org_wide_notifications_only(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, member: Tenant, other_tenant: Tenant
) -> None:
    await _notify(sessions, tenant, "For everyone")
    await _notify(sessions, tenant, "For the owner", to=tenant)
    await _notify(sessions, tenant, "For the member", to=member)
    await _notify(sessions, other_tenant, "Another org")
    assert await _titles(client, tenant) == ["For everyone", "For the owner"]
    assert await _titles(client, member) == ["For everyone", "For the member"]
    first = (await client.get(BASE, headers=member.headers)).json()["items"][0]
    assert first["read"] is False
    assert first["org_id"] == str(tenant.org_id)


async def test_list_filters_by_unread_and_kind_and_paginates(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant
) -> None:
    read_id = await _notify(sessions, tenant, "Old news", kind="sync")
    await _notify(sessions, tenant, "Fresh", kind="sync")
    await _notify(sessions, tenant, "Billing", kind="billing")
    await client.patch(f"{BASE}/{read_id}", json={"read": True}, headers=tenant.headers)
    assert await _titles(client, tenant, unread="true") == ["Billing", "Fresh"]
    assert await _titles(client, tenant, unread="false") == ["Old news"]
    assert await _titles(client, tenant, kind="sync") == ["Fresh", "Old news"]
    page = (await client.get(BASE, params={"limit": 2}, headers=tenant.headers)).json()
    rest = (await client.get(BASE, params={"limit": 2, "cursor": page["next_cursor"]}, headers=tenant.headers)).json()
    assert len(page["items"]) == 2
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None


async def test_notification_endpoints_require_a_token(client: httpx.AsyncClient) -> None:
    for method, path, body in [("GET", BASE, None), ("PATCH", f"{BASE}/{MISSING}", {"read": True}),
                               ("DELETE", f"{BASE}/{MISSING}", None),
                               ("POST", f"{BASE}/actions", {"action": "mark_all_read"})]:
        r = await client.request(method, path, json=body)
        assert r.status_code == 401, (method, path)


async def test_notification_bad_input_is_a_400(client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant) -> None:
    notification_id = await _notify(sessions, tenant)
    patches: list[dict[str, object]] = [{}, {"read": "maybe"}, {"read": True, "title": "x"}, {"read": None}]
    for body in patches:
        r = await client.patch(f"{BASE}/{notification_id}", json=body, headers=tenant.headers)
        assert r.status_code == 400, body
    actions: list[dict[str, object]] = [
        {"action": "explode"}, {"action": "mark_read"}, {"action": "delete", "ids": []},
        {"action": "delete", "ids": ["nope"]}, {"action": "mark_all_read", "ids": [MISSING]},
        {"action": "mark_read", "ids": [MISSING] * 501}, {},
    ]
    for action in actions:
        r = await client.post(f"{BASE}/actions", json=action, headers=tenant.headers)
        assert r.status_code == 400, action
    for params in ({"unread": "perhaps"}, {"cursor": "garbage!"}, {"limit": 201}, {"kind": ""}):
        assert (await client.get(BASE, params=params, headers=tenant.headers)).status_code == 400, params
    assert (await client.patch(f"{BASE}/not-a-uuid", json={"read": True}, headers=tenant.headers)).status_code == 400


async def test_mark_one_read_and_unread(client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant) -> None:
    notification_id = await _notify(sessions, tenant)
    read = await client.patch(f"{BASE}/{notification_id}", json={"read": True}, headers=tenant.headers)
    assert read.status_code == 200
    assert read.json()["read"] is True
    first_read_at = read.json()["read_at"]
    again = await client.patch(f"{BASE}/{notification_id}", json={"read": True}, headers=tenant.headers)
    assert again.json()["read_at"] == first_read_at  # the first read time is kept
    unread = await client.patch(f"{BASE}/{notification_id}", json={"read": False}, headers=tenant.headers)
    assert (unread.json()["read"], unread.json()["read_at"]) == (False, None)


async def test_delete_one_notification(client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant) -> None:
    notification_id = await _notify(sessions, tenant)
    assert (await client.delete(f"{BASE}/{notification_id}", headers=tenant.headers)).status_code == 204
    assert await _get(client, tenant, notification_id) is None
    assert (await client.delete(f"{BASE}/{notification_id}", headers=tenant.headers)).status_code == 404


async def test_missing_notification_is_not_found(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await client.patch(f"{BASE}/{MISSING}", json={"read": True}, headers=tenant.headers)).status_code == 404
    assert (await client.delete(f"{BASE}/{uuid.uuid4()}", headers=tenant.headers)).status_code == 404


async def test_another_tenants_or_users_notification_is_not_found(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, member: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _notify(sessions, other_tenant, "Theirs")
    members_own = await _notify(sessions, tenant, "Member only", to=member)
    for foreign in (theirs, members_own):
        assert (await client.patch(f"{BASE}/{foreign}", json={"read": True}, headers=tenant.headers)).status_code == 404
        assert (await client.delete(f"{BASE}/{foreign}", headers=tenant.headers)).status_code == 404
    assert (await _get(client, other_tenant, theirs) or {}).get("read") is False
    assert (await _get(client, member, members_own) or {}).get("read") is False


async def test_mark_all_read_affects_only_what_the_caller_sees(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, member: Tenant, other_tenant: Tenant
) -> None:
    await _notify(sessions, tenant, "Org-wide")
    await _notify(sessions, tenant, "Owner's", to=tenant)
    members_own = await _notify(sessions, tenant, "Member's", to=member)
    theirs = await _notify(sessions, other_tenant, "Other org")
    r = await client.post(f"{BASE}/actions", json={"action": "mark_all_read"}, headers=tenant.headers)
    assert r.status_code == 200
    assert r.json() == {"action": "mark_all_read", "affected": 2}
    assert await _titles(client, tenant, unread="true") == []
    assert (await _get(client, member, members_own) or {}).get("read") is False
    assert (await _get(client, other_tenant, theirs) or {}).get("read") is False
    again = await client.post(f"{BASE}/actions", json={"action": "mark_all_read"}, headers=tenant.headers)
    assert again.json()["affected"] == 0


async def test_bulk_mark_read_and_delete_skip_other_tenants_ids(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = [await _notify(sessions, tenant, f"Mine {i}") for i in range(3)]
    theirs = [await _notify(sessions, other_tenant, f"Theirs {i}") for i in range(2)]
    marked = await client.post(f"{BASE}/actions", json={"action": "mark_read", "ids": [mine[0], *theirs, MISSING]},
                               headers=tenant.headers)
    assert marked.json() == {"action": "mark_read", "affected": 1}
    assert await _titles(client, tenant, unread="true") == ["Mine 1", "Mine 2"]
    deleted = await client.post(f"{BASE}/actions", json={"action": "delete", "ids": [mine[1], mine[2], *theirs]},
                                headers=tenant.headers)
    assert deleted.json() == {"action": "delete", "affected": 2}
    assert await _titles(client, tenant) == ["Mine 0"]
    other_view = (await client.get(BASE, headers=other_tenant.headers)).json()["items"]
    assert sorted(n["title"] for n in other_view) == ["Theirs 0", "Theirs 1"]
    assert all(n["read"] is False for n in other_view)
