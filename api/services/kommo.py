"""Connecting an organisation to Kommo, its settings, synced CRM data, and starting CRM workflows."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.errors import BadRequest, Conflict, NotFound, ProblemError
from api.schemas.kommo import (
    CrmKommoRead,
    CrmPipelineRead,
    CrmStatusRead,
    KommoConnectionRead,
    KommoSettingsRead,
    KommoSettingsUpdate,
    OAuthStartRead,
    SendMessageInput,
    SendMessageRead,
    TestKommoRead,
)
from db.base import utcnow
from db.models import ConnectionStatus, KommoConnection
from db.pagination import InvalidCursorError
from db.repositories.kommo import CrmMirrorRepository, KommoConnectionRepository, KommoOAuthStateRepository
from integrations.kommo.errors import KommoBadRequest, KommoError, KommoUnauthorized
from integrations.kommo.models import Account, ChatParticipant, TokenPair
from salesflow.crm_schedule import upsert_crm_sync_schedule
from salesflow.kommo import KommoAccess, KommoNotConnected, parse_account_domain
from salesflow.schedules import schedules_unsupported
from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from salesflow.trigger_schedule import upsert_trigger_clock_schedule
from workflows.crm_models import CrmSyncInput
from workflows.crm_sync import CrmSyncWorkflow
from workflows.ids import TASK_QUEUE, crm_sync_id, onboarding_id
from workflows.onboarding import OnboardingWorkflow
from workflows.onboarding_models import OnboardingStep, StepCompleted

log = structlog.get_logger(__name__)

# Kommo's consent page is quick; a state older than this was abandoned (or stolen).
OAUTH_STATE_TTL = timedelta(minutes=15)


class KommoUnavailable(ProblemError):
    """Kommo could not be reached or failed; nothing was changed on our side."""

    status, title, type_slug = 502, "Bad Gateway", "kommo-unavailable"


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def webhook_url(settings: Settings, connection: KommoConnection) -> str:
    """The CRM webhook URL to register in Kommo: org id to find the row, secret to prove it is Kommo."""
    return (f"{settings.public_base_url.rstrip('/')}/api/crm/webhook"
            f"?org={connection.org_id}&secret={connection.webhook_secret}")


def connection_read(connection: KommoConnection | None) -> KommoConnectionRead:
    """The API view of a connection (or of its absence)."""
    if connection is None:
        return KommoConnectionRead(status="not_connected", connected=False, needs_reconnect=False)
    return KommoConnectionRead(
        id=connection.id,
        status=connection.status.value,
        connected=connection.status == ConnectionStatus.connected,
        needs_reconnect=connection.status == ConnectionStatus.needs_reconnect,
        account_id=connection.account_id,
        subdomain=connection.subdomain,
        long_lived=connection.long_lived,
        expires_at=connection.expires_at,
        last_synced_at=connection.last_synced_at,
        last_error=connection.last_error,
        chat_enabled=bool(connection.chat_scope_id and connection.chat_channel_secret_enc),
        settings=KommoSettingsRead.model_validate(connection.settings or {}),
    )


def _kommo_failure(exc: KommoError, what: str) -> ProblemError:
    # A 4xx means the input (code, token) was wrong: the caller's problem. Anything else is Kommo's.
    if isinstance(exc, KommoBadRequest | KommoUnauthorized) or (exc.status is not None and 400 <= exc.status < 429):
        return BadRequest(f"Kommo rejected the {what}: {exc.detail}")
    return KommoUnavailable(f"Kommo did not answer usefully ({exc.status or 'no response'}); try again.")


# ----------------------------------------------------------------------------- Temporal


async def start_crm_sync(client: Client, settings: Settings, org_id: uuid.UUID, *, reason: str) -> str:
    """Start ``crm-sync/{org}``; while one runs, a repeated request joins it instead of starting another."""
    handle = await client.start_workflow(
        CrmSyncWorkflow.run,
        CrmSyncInput(org_id=org_id),
        id=crm_sync_id(org_id),
        task_queue=TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=run_search_attributes(settings, org_id=org_id),
        static_summary=f"CRM sync ({reason})",
    )
    return handle.id


async def signal_onboarding(client: Client, org_id: uuid.UUID, step: OnboardingStep) -> None:
    """Tell the org's onboarding run a step is done; orgs created without one are skipped."""
    handle = client.get_workflow_handle_for(OnboardingWorkflow.run, onboarding_id(org_id))
    try:
        await handle.signal(OnboardingWorkflow.step_completed, StepCompleted(step=step))
    except RPCError as exc:
        # Onboarding progress is cosmetic next to a stored connection: never fail the request for it.
        if exc.status != RPCStatusCode.NOT_FOUND:
            log.warning("onboarding not signalled", org_id=str(org_id), step=step.value, error=str(exc))


async def ensure_schedule(client: Client, settings: Settings, org_id: uuid.UUID) -> str | None:
    """Create/update the periodic sync (and trigger clock) schedules; None when it could not be done now.

    Not fatal: every sync run reconciles the schedule again, so a failure here heals itself.
    """
    try:
        schedule_id = await upsert_crm_sync_schedule(client, settings, org_id)
        await upsert_trigger_clock_schedule(client, settings, org_id)
        return schedule_id
    except Exception as exc:
        if not schedules_unsupported(exc):
            log.warning("crm sync schedule not created", org_id=str(org_id), error=str(exc))
        return None


async def after_connect(client: Client, settings: Settings, org_id: uuid.UUID) -> tuple[str | None, str | None]:
    """Schedule periodic syncs, run the first one now, and advance onboarding.

    The connection is already committed; a Temporal failure here is reported as a missing
    workflow id rather than an error, since the user has nothing to redo.
    """
    schedule_id = await ensure_schedule(client, settings, org_id)
    workflow_id: str | None = None
    try:
        workflow_id = await start_crm_sync(client, settings, org_id, reason="connected")
    except RPCError as exc:
        log.warning("first crm sync not started", org_id=str(org_id), error=str(exc))
    await signal_onboarding(client, org_id, OnboardingStep.kommo_connected)
    return workflow_id, schedule_id


# ----------------------------------------------------------------------------- service


class KommoService:
    """The organisation's Kommo connection as the API manages it."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, settings: Settings, access: KommoAccess) -> None:
        self.session = session
        self.org_id = org_id
        self.settings = settings
        self.access = access
        self.connections = KommoConnectionRepository(session, org_id)

    async def get_connection(self) -> KommoConnection | None:
        """The connection row, if the org ever started connecting."""
        return await self.connections.get()

    async def require_connection(self) -> KommoConnection:
        """The connection row or 404."""
        connection = await self.connections.get()
        if connection is None:
            raise NotFound("Kommo is not connected for this organization.")
        return connection

    async def require_connected(self) -> KommoConnection:
        """A connection we can call Kommo with, else 409 (404 if there is none at all)."""
        connection = await self.require_connection()
        if connection.status != ConnectionStatus.connected:
            raise Conflict(f"The Kommo connection is {connection.status.value}; connect it first.")
        return connection

    # -- OAuth

    async def start_oauth(self, user_id: uuid.UUID) -> OAuthStartRead:
        """A fresh single-use state (stored hashed) and the consent URL carrying it."""
        await self.connections.get_or_create(secrets.token_urlsafe(32))
        state = secrets.token_urlsafe(32)
        expires_at = utcnow() + OAUTH_STATE_TTL
        states = KommoOAuthStateRepository(self.session, self.org_id)
        await states.prune(utcnow() - timedelta(days=1))
        await states.add(_hash_state(state), user_id, expires_at)
        oauth = self.access.oauth_client(self.settings.kommo_oauth_url)
        return OAuthStartRead(authorize_url=oauth.authorize_url(state), state=state, expires_at=expires_at)

    async def complete_oauth(self, code: str, state: str, referer: str, client_id: str | None) -> KommoConnection:
        """Consume the state, exchange the code, check the account, and store the encrypted pair.

        The state is consumed and committed first, so it is single use even if what follows fails;
        a state of another org, an expired one and a replayed one are the same 400.
        """
        consumed = await KommoOAuthStateRepository(self.session, self.org_id).consume(_hash_state(state), utcnow())
        await self.session.commit()
        if not consumed:
            raise BadRequest("The OAuth state is invalid, expired or already used; start again.",
                             errors=[{"field": "body.state", "message": "invalid, expired or already used"}])
        if client_id is not None and client_id != self.settings.kommo_client_id:
            raise BadRequest("The redirect is for another integration.",
                             errors=[{"field": "body.client_id", "message": "not this integration"}])
        domain = parse_account_domain(referer)
        if domain is None:
            raise BadRequest("referer must be a Kommo account domain such as acme.kommo.com.",
                             errors=[{"field": "body.referer", "message": "not a Kommo account domain"}])
        subdomain, host = domain
        base_url = self.access.api_base(subdomain, f"https://{host}")
        try:
            pair = await self.access.oauth_client(base_url).exchange_code(code)
            account = await self.access.api_client(base_url, pair.access_token, subdomain).get_account()
        except KommoError as exc:
            raise _kommo_failure(exc, "authorization code") from exc
        if account.subdomain.lower() != subdomain:
            raise BadRequest("The token belongs to another Kommo account than the referer says.",
                             errors=[{"field": "body.referer", "message": "does not match the account"}])
        return await self._store(account, f"https://{host}", pair=pair)

    async def connect_long_lived(self, subdomain: str, token: str) -> KommoConnection:
        """Validate a private integration's long-lived token with ``GET /api/v4/account`` and store it."""
        base_url = self.access.api_base(subdomain, f"https://{subdomain}.kommo.com")
        try:
            account = await self.access.api_client(base_url, token, subdomain).get_account()
        except KommoError as exc:
            raise _kommo_failure(exc, "token") from exc
        if account.subdomain.lower() != subdomain:
            raise BadRequest("The token belongs to another Kommo account.",
                             errors=[{"field": "body.subdomain", "message": "does not match the token's account"}])
        return await self._store(account, f"https://{subdomain}.kommo.com", long_lived_token=token)

    async def _store(
        self, account: Account, base_url: str, *, pair: TokenPair | None = None, long_lived_token: str | None = None
    ) -> KommoConnection:
        connection = await self.connections.get_or_create(secrets.token_urlsafe(32))
        box = self.access.box
        now = utcnow()
        connection.account_id = account.id
        connection.subdomain = account.subdomain.lower()
        connection.base_url = base_url
        connection.status = ConnectionStatus.connected
        connection.last_error = None
        if pair is not None:
            connection.access_token_enc = box.encrypt(pair.access_token)
            connection.refresh_token_enc = box.encrypt(pair.refresh_token)
            connection.expires_at = now + timedelta(seconds=pair.expires_in)
            connection.long_lived = False
        else:
            assert long_lived_token is not None
            connection.access_token_enc = box.encrypt(long_lived_token)
            connection.refresh_token_enc = None
            connection.expires_at = None
            connection.long_lived = True
        channel_id, channel_secret = self.settings.kommo_chat_channel_id, self.settings.kommo_chat_channel_secret
        if channel_id and channel_secret and account.amojo_id:
            # Kommo's scope id of a channel in an account is "{channel_id}_{amojo_id}".
            connection.chat_scope_id = f"{channel_id}_{account.amojo_id}"
            connection.chat_channel_secret_enc = box.encrypt(channel_secret)
        connection.updated_at = now
        await self.session.flush()
        return connection

    # -- settings and actions

    async def update_settings(self, changes: KommoSettingsUpdate) -> KommoConnection:
        """Merge a partial settings update; a default responsible user must be a synced one."""
        connection = await self.require_connection()
        data = changes.model_dump(exclude_unset=True)
        if data.get("sync_leads", False) is None:
            # null cannot mean "clear" for a flag; treat it as "leave unchanged".
            del data["sync_leads"]
        user_id = data.get("default_responsible_user_id")
        if user_id is not None and not await CrmMirrorRepository(self.session, self.org_id).user_exists(user_id):
            raise BadRequest("Unknown Kommo user; sync the account first.",
                             errors=[{"field": "body.default_responsible_user_id", "message": "not a synced user"}])
        merged = KommoSettingsRead.model_validate({**(connection.settings or {}), **data})
        connection.settings = merged.model_dump()
        connection.updated_at = utcnow()
        await self.session.flush()
        return connection

    async def disconnect(self) -> KommoConnection:
        """Forget the tokens and chat secret and retire the webhook URL (a new secret)."""
        connection = await self.require_connection()
        connection.status = ConnectionStatus.disconnected
        connection.access_token_enc = None
        connection.refresh_token_enc = None
        connection.expires_at = None
        connection.chat_channel_secret_enc = None
        connection.webhook_secret = secrets.token_urlsafe(32)
        connection.last_error = None
        connection.updated_at = utcnow()
        await self.session.flush()
        return connection

    async def rotate_webhook_secret(self) -> KommoConnection:
        """Invalidate the current webhook URL (e.g. it leaked); Kommo must be given the new one."""
        connection = await self.require_connection()
        connection.webhook_secret = secrets.token_urlsafe(32)
        connection.updated_at = utcnow()
        await self.session.flush()
        return connection

    def crm_read(self, connection: KommoConnection | None) -> CrmKommoRead:
        """Connection plus webhook URL."""
        url = webhook_url(self.settings, connection) if connection is not None else None
        if connection is not None and connection.status == ConnectionStatus.disconnected:
            url = None
        return CrmKommoRead(connection=connection_read(connection), webhook_url=url)

    # -- CRM data

    async def list_pipelines(self, *, limit: int, cursor: str | None) -> tuple[list[CrmPipelineRead], str | None]:
        """Synced pipelines with their statuses."""
        repo = CrmMirrorRepository(self.session, self.org_id)
        try:
            page = await repo.list_pipelines(limit=limit, cursor=cursor)
        except InvalidCursorError as exc:
            raise BadRequest("cursor is not valid", errors=[{"field": "query.cursor", "message": str(exc)}]) from exc
        statuses = await repo.statuses_by_pipeline([p.kommo_id for p in page.items])
        items = [
            CrmPipelineRead(
                id=p.id, kommo_id=p.kommo_id, name=p.name, sort=p.sort, is_main=p.is_main, is_archived=p.is_archived,
                updated_at=p.updated_at,
                statuses=[CrmStatusRead.model_validate(s) for s in statuses.get(p.kommo_id, [])],
            )
            for p in page.items
        ]
        return items, page.next_cursor

    # -- live calls

    async def send_message(self, body: SendMessageInput, idempotency_key: str | None) -> SendMessageRead:
        """Send through the Chats API; the msgid (body, else Idempotency-Key) makes a resend a no-op."""
        connection = await self.require_connected()
        try:
            amojo = self.access.amojo_client(connection)
        except KommoNotConnected as exc:
            raise Conflict("No Kommo chat channel is configured for this connection.") from exc
        assert connection.chat_scope_id is not None
        msgid = body.msgid or idempotency_key or str(uuid.uuid4())
        try:
            result = await amojo.send_message(
                connection.chat_scope_id, body.conversation_id, body.text, msgid,
                receiver=ChatParticipant(id=body.receiver.id, name=body.receiver.name),
            )
        except KommoError as exc:
            raise _kommo_failure(exc, "message") from exc
        return SendMessageRead(msgid=result.msgid, conversation_id=result.conversation_id, ref_id=result.ref_id)

    async def test_connection(self) -> TestKommoRead:
        """One live ``GET /api/v4/account`` with the stored (refreshed if needed) token."""
        started = time.perf_counter()
        try:
            account = await (await self.access.client_for(self.org_id)).get_account()
        except KommoNotConnected as exc:
            return TestKommoRead(ok=False, error=str(exc))
        except KommoError as exc:
            return TestKommoRead(ok=False, error=f"{type(exc).__name__}: {exc.detail}")
        latency = round((time.perf_counter() - started) * 1000, 1)
        return TestKommoRead(ok=True, account_id=account.id, subdomain=account.subdomain, latency_ms=latency)

