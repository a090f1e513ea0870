"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.errors import RejectNulMiddleware, install_error_handlers
from api.metrics import HttpMetrics, RequestMetricsMiddleware
from api.routers import (
    account,
    admin,
    agent_assets,
    agent_config,
    agent_crm,
    agent_knowledge,
    agents,
    analytics,
    auth,
    billing,
    chat,
    cron,
    dev,
    email_templates,
    health,
    jobs,
    knowledge_base,
    kommo,
    metrics,
    notifications,
    onboarding,
    sequences,
    triggers,
    webhooks,
)
from db.session import create_engine, create_sessionmaker
from salesflow.settings import Settings
from salesflow.temporal import connect_client

log = structlog.get_logger(__name__)

VERSION = "0.1.0"
ROUTERS = (
    health.router, auth.router, agents.router, onboarding.router,
    agent_config.router,
    agent_knowledge.router,
    agent_assets.router,
    knowledge_base.router,
    email_templates.router,
    notifications.router,
    account.router,
    admin.router,
    kommo.router,
    agent_crm.router,
    chat.router,
    chat.hooks_router,
    sequences.router,
    triggers.router,
    analytics.router,
    metrics.router,
    billing.router,
    jobs.router,
    cron.router,
    webhooks.router,
)


def create_app(
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    temporal: Client | None = None,
) -> FastAPI:
    """Build the app. Tests inject their session factory and Temporal client; servers let it connect."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine: AsyncEngine | None = None
        if app.state.sessions is None:
            if settings.database_url is None:
                raise RuntimeError("DATABASE_URL is not set")
            engine = create_engine(settings.database_url)
            app.state.sessions = create_sessionmaker(engine)
        if app.state.temporal is None:
            try:
                app.state.temporal = await connect_client(settings)
            except Exception:
                log.warning("temporal not reachable at startup", address=settings.temporal_address)
        yield
        if engine is not None:
            await engine.dispose()

    app = FastAPI(
        title="salesflow API",
        version=VERSION,
        description="AI sales agents for the Kommo CRM. Errors are application/problem+json (RFC 9457).",
        lifespan=lifespan,
        # Under /api like every other route, so one proxy rule serves the whole surface.
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.temporal = temporal
    install_error_handlers(app)
    app.add_middleware(RejectNulMiddleware)
    # Outermost, so rejected and failed requests are counted too.
    app.state.request_metrics = HttpMetrics()
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.request_metrics)
    for router in ROUTERS:
        app.include_router(router)
    # Absent, not merely refused, outside development: /api/test-login answers the router's plain 404.
    if settings.environment == "development":
        app.include_router(dev.router)
    return app
