"""Liveness and readiness."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from db.session import create_engine, create_sessionmaker
from salesflow.settings import Settings


async def test_health_answers_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_ready_when_postgres_and_temporal_answer(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/health/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"postgres": "up", "temporal": "up"}}


async def test_ready_names_the_dependency_that_is_down(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], temporal_client: Client
) -> None:
    dead_db = create_sessionmaker(create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none"))
    for app, expected in [
        (create_app(settings, sessions=dead_db, temporal=temporal_client), {"postgres": "down", "temporal": "up"}),
        (create_app(settings, sessions=sessions, temporal=None), {"postgres": "up", "temporal": "down"}),
    ]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/api/health/ready")
        assert r.status_code == 503
        assert r.json() == {"status": "not_ready", "checks": expected}


async def test_the_api_documents_itself_under_api(client: httpx.AsyncClient) -> None:
    docs = await client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text
    document = (await client.get("/api/openapi.json")).json()
    assert document["info"]["title"] == "salesflow API"
    assert "/api/analytics" in document["paths"]
    assert (await client.get("/docs")).status_code == 404
