"""KommoAccess against real Postgres and the Kommo sandbox: token rotation and the shared rate limit.

"Processes" are simulated with separate engines (separate connection pools), so nothing in-process
can coordinate them: only Postgres does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.kommo import KommoActivities
from db.models import ConnectionStatus, Notification
from db.repositories.kommo import KommoRateSlotRepository
from db.session import create_engine, create_sessionmaker
from integrations.crypto import SecretBox
from integrations.kommo.sandbox import KommoSandbox
from salesflow.kommo import KommoAccess, KommoReconnectNeeded, PostgresRateLimiter
from salesflow.settings import Settings
from tests.harness import Tenant
from tests.kommo_support import connect_directly, get_connection
from workflows.crm_models import FetchLeadInput

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def process_sessions(database_url: str) -> AsyncIterator[list[Sessions]]:
    """Three independent connection pools, standing in for three worker/API processes."""
    engines = [create_engine(database_url, pool_size=5) for _ in range(3)]
    yield [create_sessionmaker(e) for e in engines]
    for engine in engines:
        await engine.dispose()


async def test_concurrent_callers_in_several_processes_cause_exactly_one_refresh(
    tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings, sessions: Sessions,
    process_sessions: list[Sessions],
) -> None:
    # A token five minutes from expiry is inside the refresh margin.
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id,
                                        expires_in=timedelta(minutes=5))
    before = await get_connection(sessions, tenant.org_id)
    assert before is not None
    assert before.expires_at is not None

    def token_calls() -> int:
        return sum(1 for r in kommo_sandbox.requests if r.path == "/oauth2/access_token")

    calls_before = token_calls()
    box = SecretBox(settings.token_encryption_key)
    async with httpx.AsyncClient() as http:
        accesses = [KommoAccess(s, settings, box, http) for s in process_sessions]
        clients = await asyncio.gather(*(accesses[i % 3].client_for(tenant.org_id) for i in range(12)))
        assert token_calls() - calls_before == 1
        tokens = {c.access_token for c in clients}
        assert len(tokens) == 1  # every caller got the winner's token...
        assert (await clients[0].get_account()).id == account.id  # ...and it works
    after = await get_connection(sessions, tenant.org_id)
    assert after is not None
    assert after.expires_at is not None
    assert after.expires_at - before.expires_at > timedelta(hours=23)
    assert box.decrypt(after.access_token_enc or "") == tokens.pop()
    # The new refresh token is stored and is the account's only live one (the old one was spent).
    live = [t for t, g in kommo_sandbox._refresh.items() if g.account_id == account.id]
    assert [box.decrypt(after.refresh_token_enc or "")] == live


async def test_a_rejected_refresh_marks_the_connection_and_notifies_the_org(
    tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings, sessions: Sessions
) -> None:
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id,
                                        expires_in=timedelta(minutes=1))
    kommo_sandbox.revoke_tokens(account)  # the integration was uninstalled in Kommo
    async with httpx.AsyncClient() as http:
        access = KommoAccess(sessions, settings, SecretBox(settings.token_encryption_key), http)
        with pytest.raises(KommoReconnectNeeded):
            await access.client_for(tenant.org_id)
        with pytest.raises(KommoReconnectNeeded):
            await access.client_for(tenant.org_id)
    row = await get_connection(sessions, tenant.org_id)
    assert row is not None
    assert row.status == ConnectionStatus.needs_reconnect
    assert row.last_error is not None
    assert "refresh" in row.last_error
    async with sessions() as session:
        notes = list((await session.scalars(select(Notification).where(Notification.org_id == tenant.org_id))).all())
    assert [n.kind for n in notes] == ["kommo_needs_reconnect"]


async def test_a_revoked_access_token_is_rotated_and_the_activity_retried(
    tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings, sessions: Sessions
) -> None:
    account, connection = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    lead = kommo_sandbox.add_lead(account, "Lead")
    box = SecretBox(settings.token_encryption_key)
    del kommo_sandbox._access[box.decrypt(connection.access_token_enc or "")]
    async with httpx.AsyncClient() as http:
        activities = KommoActivities(sessions, settings, box, http)
        env = ActivityEnvironment()
        with pytest.raises(ApplicationError) as failed:
            await env.run(activities.fetch_lead, FetchLeadInput(org_id=tenant.org_id, kommo_lead_id=lead.id))
        assert failed.value.type == "KommoUnauthorized"
        assert not failed.value.non_retryable
        # What Temporal's retry would do: the second attempt uses the rotated token.
        snapshot = await env.run(activities.fetch_lead, FetchLeadInput(org_id=tenant.org_id, kommo_lead_id=lead.id))
    assert snapshot.found
    assert snapshot.kommo_id == lead.id


async def test_the_postgres_limiter_holds_the_budget_across_processes(
    process_sessions: list[Sessions],
) -> None:
    key = f"test:{uuid.uuid4()}"
    limit, period = 7, 1.1

    async def reserve(sessions: Sessions) -> float:
        async with sessions() as session:
            reservation = await KommoRateSlotRepository(session).reserve(key, limit, period)
            await session.commit()
        return reservation.slot

    # 40 requests at once from three processes: the grants (database clock) are what Kommo would see.
    slots = sorted(await asyncio.gather(*(reserve(process_sessions[i % 3]) for i in range(40))))
    assert all(slots[i + limit] - slots[i] >= period - 1e-6 for i in range(len(slots) - limit))
    assert slots[-1] - slots[0] >= (40 // limit - 1) * period  # and they are not spread wider than needed
    assert slots[-1] - slots[0] <= (40 // limit + 1) * period

    # The limiter waits for its slot: with a fresh key, the 8th request of a burst waits about a period.
    limiter = PostgresRateLimiter(process_sessions[0], limit=limit, period=0.3)
    burst_key = f"test:{uuid.uuid4()}"
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire(burst_key) for _ in range(limit + 1)))
    assert time.monotonic() - started >= 0.25


async def test_concurrent_api_calls_stay_under_kommos_limit(
    tenant: Tenant, kommo_sandbox: KommoSandbox, settings: Settings, sessions: Sessions,
    process_sessions: list[Sessions],
) -> None:
    account, _ = await connect_directly(sessions, settings, kommo_sandbox, tenant.org_id)
    box = SecretBox(settings.token_encryption_key)
    async with httpx.AsyncClient() as http:
        accesses = [KommoAccess(s, settings, box, http) for s in process_sessions]
        clients = [await a.client_for(tenant.org_id) for a in accesses]
        await asyncio.gather(*(clients[i % 3].get_account() for i in range(16)))
    statuses = [r.status for r in kommo_sandbox.requests_for(account)]
    assert statuses == [200] * 16  # not a single 429 from the sandbox's 7 requests/s
