"""The one way every process (API, worker) gets an authenticated Kommo client for an organisation.

``KommoAccess`` decrypts the stored tokens, refreshes them before they expire -- one refresh per
account at a time across every process, serialised by a row lock on the connection -- and hands out
clients whose every request first reserves a slot in the Postgres-backed per-account rate limiter.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import ConnectionStatus, KommoConnection
from db.repositories.content import NotificationRepository
from db.repositories.kommo import KommoConnectionRepository, KommoRateSlotRepository
from integrations.crypto import SecretBox
from integrations.kommo.client import AmojoClient, KommoClient, KommoOAuthClient
from integrations.kommo.errors import KommoBadRequest, KommoUnauthorized
from salesflow.settings import Settings

log = structlog.get_logger(__name__)

# Refresh this long before expiry: a token must not die between our check and Kommo's.
REFRESH_MARGIN = timedelta(minutes=10)
# Requests spaced by exactly 1 s on our side can land inside one second on Kommo's after network
# jitter; a 10 % longer window costs little and keeps us clear of 429s.
RATE_PERIOD_SECONDS = 1.1
# Kommo account domains we exchange codes with; anything else could be an attacker's host.
_ACCOUNT_DOMAIN = re.compile(r"^([a-z0-9][a-z0-9-]{0,62})\.(kommo\.com|amocrm\.ru|amocrm\.com)$")
_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class KommoNotConnected(Exception):
    """The organisation has no usable Kommo connection (never connected, disconnected, or broken)."""


class KommoReconnectNeeded(KommoNotConnected):
    """Kommo rejected our refresh token (or long-lived token): a human must reconnect."""


def parse_account_domain(referer: str) -> tuple[str, str] | None:
    """``acme.kommo.com`` -> (``acme``, ``acme.kommo.com``); None for anything that is not a Kommo domain."""
    host = referer.strip().lower()
    host = host.removeprefix("https://").removeprefix("http://").rstrip("/")
    match = _ACCOUNT_DOMAIN.match(host)
    if match is None:
        return None
    return match.group(1), host


def valid_subdomain(subdomain: str) -> bool:
    """Whether ``subdomain`` can be a Kommo account subdomain."""
    return _SUBDOMAIN.match(subdomain) is not None


def rate_limit_key(subdomain: str) -> str:
    """Key of an account's request budget (the subdomain is unique per Kommo account)."""
    return f"kommo:{subdomain}"


class PostgresRateLimiter:
    """``RateLimiter`` whose budget lives in Postgres, so all workers and API replicas share it."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        limit: int,
        period: float = RATE_PERIOD_SECONDS,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self._limit = limit
        self._period = period
        self._sleep = sleep

    async def acquire(self, key: str) -> None:
        """Reserve this request's slot (short transaction), then wait for it outside any transaction."""
        async with self._sessions() as session:
            reservation = await KommoRateSlotRepository(session).reserve(key, self._limit, self._period)
            await session.commit()
        if reservation.delay > 0:
            await self._sleep(reservation.delay)


class KommoAccess:
    """Clients for an organisation's Kommo account, with token rotation and the shared rate limit."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        box: SecretBox,
        http: httpx.AsyncClient,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.box = box
        self.http = http
        self.limiter = PostgresRateLimiter(sessions, settings.kommo_requests_per_second)

    # ------------------------------------------------------------------ building clients

    def api_base(self, subdomain: str | None, base_url: str | None = None) -> str:
        """Where the account's API lives: the configured override (sandbox, proxy) or its own domain."""
        if self.settings.kommo_api_base_url:
            return self.settings.kommo_api_base_url
        if base_url:
            return base_url
        return f"https://{subdomain}.kommo.com"

    def api_client(self, base_url: str, access_token: str, subdomain: str) -> KommoClient:
        """An API v4 client sharing our HTTP pool and the account's request budget."""
        return KommoClient(base_url, access_token, http=self.http, rate_limiter=self.limiter,
                           rate_limit_key=rate_limit_key(subdomain))

    def oauth_client(self, base_url: str) -> KommoOAuthClient:
        """OAuth client of our integration against an account's token endpoint."""
        return KommoOAuthClient(base_url, self.settings.kommo_client_id, self.settings.kommo_client_secret,
                                self.settings.kommo_redirect_uri, http=self.http)

    def amojo_client(self, connection: KommoConnection) -> AmojoClient:
        """Chats API client of the connection's channel; KommoNotConnected if it has none."""
        channel_id = self.settings.kommo_chat_channel_id
        if not connection.chat_scope_id or not connection.chat_channel_secret_enc or not channel_id:
            raise KommoNotConnected("no Kommo chat channel is configured for this connection")
        secret = self.box.decrypt(connection.chat_channel_secret_enc)
        return AmojoClient(self.settings.kommo_amojo_url, channel_id, secret, http=self.http)

    # ------------------------------------------------------------------ tokens

    async def load(self, org_id: uuid.UUID) -> KommoConnection:
        """The connected connection row; KommoNotConnected otherwise."""
        async with self.sessions() as session:
            connection = await KommoConnectionRepository(session, org_id).get()
        if connection is None or connection.status != ConnectionStatus.connected:
            state = "not connected" if connection is None else connection.status.value
            if connection is not None and connection.status == ConnectionStatus.needs_reconnect:
                raise KommoReconnectNeeded(f"Kommo connection of org {org_id} needs reconnecting")
            raise KommoNotConnected(f"Kommo is {state} for org {org_id}")
        return connection

    async def client_for(self, org_id: uuid.UUID) -> KommoClient:
        """An API client with a valid access token, refreshed first if it is about to expire."""
        connection = await self.load(org_id)
        assert connection.access_token_enc is not None
        assert connection.subdomain is not None
        token = self.box.decrypt(connection.access_token_enc)
        if self._expiring(connection):
            token = await self.refresh(org_id, seen_token=token)
        return self.api_client(self.api_base(connection.subdomain, connection.base_url), token, connection.subdomain)

    @staticmethod
    def _expiring(connection: KommoConnection) -> bool:
        if connection.long_lived or connection.expires_at is None:
            return False
        return connection.expires_at - datetime.now(UTC) < REFRESH_MARGIN

    async def refresh(self, org_id: uuid.UUID, *, seen_token: str) -> str:
        """Rotate the pair unless another process already did; returns the access token to use.

        The connection row stays locked (SELECT .. FOR UPDATE) from the re-check through Kommo's
        answer to the commit of the new pair, so for one account exactly one refresh is in flight
        and nobody can use a refresh token Kommo has just revoked. Waiters re-read the row after the
        lock and find the winner's token. A 401/400 from Kommo means the refresh token is dead: the
        connection is marked ``needs_reconnect`` and the org is notified. Anything else (5xx,
        timeout) rolls back and propagates for Temporal to retry.
        """
        async with self.sessions() as session:
            repo = KommoConnectionRepository(session, org_id)
            connection = await repo.get_for_update()
            if connection is None or connection.status != ConnectionStatus.connected:
                await session.rollback()
                raise KommoNotConnected(f"Kommo is not connected for org {org_id}")
            assert connection.access_token_enc is not None
            assert connection.subdomain is not None
            current = self.box.decrypt(connection.access_token_enc)
            if current != seen_token and not self._expiring(connection):
                await session.rollback()
                return current
            if connection.long_lived or not connection.refresh_token_enc:
                await self._needs_reconnect(session, connection, "Kommo rejected the long-lived token.")
                await session.commit()
                raise KommoReconnectNeeded(f"long-lived Kommo token of org {org_id} was rejected")
            refresh_token = self.box.decrypt(connection.refresh_token_enc)
            oauth = self.oauth_client(self.api_base(connection.subdomain, connection.base_url))
            try:
                pair = await oauth.refresh(refresh_token)
            except (KommoUnauthorized, KommoBadRequest) as exc:
                await self._needs_reconnect(
                    session, connection, f"Kommo refused to refresh the token: {exc.detail}",
                    dedupe=hashlib.sha256(refresh_token.encode()).hexdigest()[:16],
                )
                await session.commit()
                raise KommoReconnectNeeded(f"refresh token of org {org_id} was rejected") from exc
            except BaseException:
                await session.rollback()
                raise
            now = datetime.now(UTC)
            connection.access_token_enc = self.box.encrypt(pair.access_token)
            connection.refresh_token_enc = self.box.encrypt(pair.refresh_token)
            connection.expires_at = now + timedelta(seconds=pair.expires_in)
            connection.last_error = None
            connection.updated_at = now
            await session.commit()
            log.info("kommo token refreshed", org_id=str(org_id), expires_at=connection.expires_at.isoformat())
            return pair.access_token

    async def mark_needs_reconnect(self, org_id: uuid.UUID, reason: str) -> None:
        """Record that the connection cannot be used until a human reconnects, and tell the org."""
        async with self.sessions() as session:
            connection = await KommoConnectionRepository(session, org_id).get_for_update()
            if connection is not None and connection.status == ConnectionStatus.connected:
                await self._needs_reconnect(session, connection, reason)
            await session.commit()

    @staticmethod
    async def _needs_reconnect(
        session: AsyncSession, connection: KommoConnection, reason: str, *, dedupe: str | None = None
    ) -> None:
        connection.status = ConnectionStatus.needs_reconnect
        connection.last_error = reason
        connection.updated_at = datetime.now(UTC)
        # One notification per broken token, however many activities trip over it.
        key = f"kommo-reconnect/{connection.id}/{dedupe or connection.updated_at.date().isoformat()}"
        await NotificationRepository(session, connection.org_id).create_once(
            kind="kommo_needs_reconnect",
            title="Reconnect Kommo",
            body=f"salesflow can no longer reach your Kommo account {connection.subdomain or ''}. {reason}",
            user_id=None,
            dedupe_key=key,
        )
        log.warning("kommo connection needs reconnect", org_id=str(connection.org_id), reason=reason)
