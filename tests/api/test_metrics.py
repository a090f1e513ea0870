"""GET /api/metrics: Prometheus text of this process's traffic and the platform's backlogs, for operators only."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from db.models import InboxEvent
from salesflow.settings import Settings
from tests.harness import Tenant

Sessions = async_sessionmaker[AsyncSession]
TenantFactory = Callable[..., Awaitable[Tenant]]
SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? -?[0-9.e+]+$')


def _valid_exposition(text: str) -> bool:
    return all(line.startswith("# ") or SAMPLE.match(line) for line in text.splitlines())


async def test_a_platform_admin_reads_traffic_by_route_template_and_the_inbox_backlog(
    client: httpx.AsyncClient, sessions: Sessions, make_tenant: TenantFactory
) -> None:
    operator = await make_tenant(platform_admin=True)
    source = f"t-{uuid.uuid4().hex[:8]}"
    async with sessions() as session:
        session.add(InboxEvent(source=source, external_key="one", event_type="lead.status", payload={},
                               received_at=datetime.now(UTC) - timedelta(minutes=2)))
        await session.commit()
    missing = uuid.uuid4()
    assert (await client.get(f"/api/agents/{missing}", headers=operator.headers)).status_code == 404

    r = await client.get("/api/metrics", headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert _valid_exposition(r.text)
    assert re.search(r'salesflow_http_requests_total\{method="GET",route="/api/agents/\{id\}",status="4xx"\} [1-9]',
                     r.text)
    assert str(missing) not in r.text  # ids never become label values
    assert f'salesflow_inbox_unprocessed{{source="{source}"}} 1' in r.text
    oldest = re.search(rf'salesflow_inbox_oldest_unprocessed_seconds\{{source="{source}"\}} ([0-9.e+]+)', r.text)
    assert oldest is not None
    assert float(oldest.group(1)) >= 120
    assert "# TYPE salesflow_http_request_duration_seconds histogram" in r.text
    assert re.search(r"^salesflow_organizations [1-9]", r.text, re.MULTILINE)


async def test_metrics_need_the_scrape_token_or_a_platform_administrator(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, sessions: Sessions
) -> None:
    assert (await client.get("/api/metrics")).status_code == 401
    assert (await client.get("/api/metrics", headers={"Authorization": "Bearer not-a-token"})).status_code == 401
    owner = await client.get("/api/metrics", headers=tenant.headers)  # owns an organisation, not the platform
    assert owner.status_code == 403
    assert owner.headers["content-type"].startswith("application/problem+json")

    scraped = create_app(settings.model_copy(update={"metrics_token": "scrape-" + "s" * 40}), sessions=sessions)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=scraped), base_url="http://t") as scraper:
        ok = await scraper.get("/api/metrics", headers={"Authorization": "Bearer scrape-" + "s" * 40})
        wrong = await scraper.get("/api/metrics", headers={"Authorization": "Bearer scrape-" + "x" * 40})
    assert ok.status_code == 200
    assert _valid_exposition(ok.text)
    assert wrong.status_code == 401
