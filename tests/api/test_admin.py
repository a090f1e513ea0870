"""/api/admin/stats: platform operators only, counting across every tenant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities, NotifyInput
from tests.harness import Tenant

STATS = "/api/admin/stats"

TenantFactory = Callable[..., Awaitable[Tenant]]


async def _stats(client: httpx.AsyncClient, operator: Tenant) -> dict[str, Any]:
    r = await client.get(STATS, headers=operator.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_platform_admin_sees_totals_and_per_plan_counts(
    client: httpx.AsyncClient, make_tenant: TenantFactory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    operator = await make_tenant(platform_admin=True)
    before = await _stats(client, operator)
    assert before["organizations"] == sum(p["organizations"] for p in before["by_plan"].values())
    newcomer = await make_tenant()
    agent = await client.post("/api/agents", json={"name": "Closer"}, headers=newcomer.headers)
    deleted = await client.post("/api/agents", json={"name": "Gone"}, headers=newcomer.headers)
    await client.delete(f"/api/agents/{deleted.json()['id']}", headers=newcomer.headers)
    assert agent.status_code == 201
    await ActivityEnvironment().run(
        NotifyActivities(sessions).notify, NotifyInput(org_id=newcomer.org_id, kind="k", title="t")
    )
    after = await _stats(client, operator)
    for key in ("organizations", "users", "agents", "notifications"):
        assert after[key] == before[key] + 1, key  # the deleted agent does not count
        trial_before = before["by_plan"].get("trial", {}).get(key, 0)
        assert after["by_plan"]["trial"][key] == trial_before + 1, key


async def test_admin_stats_are_forbidden_to_tenant_owners_and_members(
    client: httpx.AsyncClient, tenant: Tenant, member: Tenant
) -> None:
    for caller in (tenant, member):
        r = await client.get(STATS, headers=caller.headers)
        assert r.status_code == 403
        assert r.json()["title"] == "Forbidden"


async def test_admin_stats_require_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get(STATS)).status_code == 401
    assert (await client.get(STATS, headers={"Authorization": "Bearer forged"})).status_code == 401
