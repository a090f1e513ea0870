"""NotifyActivities.notify against the real database: idempotent per dedupe key, fails for good on bad ids."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities, NotifyInput
from db.models import Notification
from tests.harness import Tenant

Sessions = async_sessionmaker[AsyncSession]


async def _count(sessions: Sessions, org_id: uuid.UUID) -> int:
    async with sessions() as session:
        stmt = select(func.count()).select_from(Notification).where(Notification.org_id == org_id)
        return int(await session.scalar(stmt) or 0)


async def test_a_retried_notify_with_a_dedupe_key_creates_one_notification(sessions: Sessions, tenant: Tenant) -> None:
    activities = NotifyActivities(sessions)
    data = NotifyInput(org_id=tenant.org_id, kind="kommo", title="Kommo disconnected", body="Reconnect it.",
                       dedupe_key="kommo-expired/2026-11-27")
    env = ActivityEnvironment()
    first = await env.run(activities.notify, data)
    second = await env.run(activities.notify, data)
    assert first == second
    assert await _count(sessions, tenant.org_id) == 1
    async with sessions() as session:
        row = await session.get(Notification, uuid.UUID(first))
    assert row is not None
    assert (row.kind, row.title, row.body, row.user_id, row.read_at) == (
        "kommo", "Kommo disconnected", "Reconnect it.", None, None
    )


async def test_the_same_dedupe_key_in_another_org_is_another_notification(
    sessions: Sessions, tenant: Tenant, other_tenant: Tenant
) -> None:
    env, activities = ActivityEnvironment(), NotifyActivities(sessions)
    mine = await env.run(activities.notify, NotifyInput(org_id=tenant.org_id, kind="k", title="t", dedupe_key="same"))
    theirs = await env.run(
        activities.notify, NotifyInput(org_id=other_tenant.org_id, kind="k", title="t", dedupe_key="same")
    )
    assert mine != theirs


async def test_without_a_dedupe_key_every_call_notifies(sessions: Sessions, tenant: Tenant) -> None:
    env, activities = ActivityEnvironment(), NotifyActivities(sessions)
    data = NotifyInput(org_id=tenant.org_id, kind="digest", title="Daily digest", user_id=tenant.user_id)
    ids = {await env.run(activities.notify, data) for _ in range(2)}
    assert len(ids) == 2
    assert await _count(sessions, tenant.org_id) == 2


async def test_an_unknown_org_or_a_non_member_fails_without_retry(
    sessions: Sessions, tenant: Tenant, other_tenant: Tenant
) -> None:
    env, activities = ActivityEnvironment(), NotifyActivities(sessions)
    for data in (NotifyInput(org_id=uuid.uuid4(), kind="k", title="t"),
                 NotifyInput(org_id=tenant.org_id, kind="k", title="t", user_id=other_tenant.user_id)):
        with pytest.raises(ApplicationError) as info:
            await env.run(activities.notify, data)
        assert info.value.non_retryable
    assert await _count(sessions, tenant.org_id) == 0
