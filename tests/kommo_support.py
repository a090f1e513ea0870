"""Test helpers for the Kommo integration: seed a sandbox account and connect an organisation to it."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import ConnectionStatus, InboxEvent, KommoConnection
from integrations.crypto import SecretBox
from integrations.kommo.sandbox import KommoSandbox, SandboxAccount
from salesflow.settings import Settings

Sessions = async_sessionmaker[AsyncSession]


def new_account(sandbox: KommoSandbox, settings: Settings, **kwargs: Any) -> SandboxAccount:
    """A sandbox account that installed our integration and our chat channel."""
    assert settings.kommo_chat_channel_id is not None
    assert settings.kommo_chat_channel_secret is not None
    return sandbox.add_account(
        f"acct{uuid.uuid4().hex[:12]}", client_id=settings.kommo_client_id,
        client_secret=settings.kommo_client_secret, redirect_uri=settings.kommo_redirect_uri,
        channel_id=settings.kommo_chat_channel_id, channel_secret=settings.kommo_chat_channel_secret, **kwargs,
    )


async def connect_directly(
    sessions: Sessions,
    settings: Settings,
    sandbox: KommoSandbox,
    org_id: uuid.UUID,
    *,
    account: SandboxAccount | None = None,
    access_ttl: float | None = None,
    expires_in: timedelta | None = None,
) -> tuple[SandboxAccount, KommoConnection]:
    """Store a connected connection as the OAuth callback would (without the round trip)."""
    account = account or new_account(sandbox, settings)
    pair = sandbox.issue_tokens(account, access_ttl=access_ttl)
    box = SecretBox(settings.token_encryption_key)
    assert settings.kommo_chat_channel_secret is not None
    connection = KommoConnection(
        org_id=org_id, account_id=account.id, subdomain=account.subdomain,
        base_url=f"https://{account.subdomain}.kommo.com", status=ConnectionStatus.connected,
        access_token_enc=box.encrypt(pair.access_token), refresh_token_enc=box.encrypt(pair.refresh_token),
        expires_at=datetime.now(UTC) + (expires_in if expires_in is not None else timedelta(seconds=pair.expires_in)),
        long_lived=False, webhook_secret=secrets.token_urlsafe(32), settings={},
        chat_scope_id=account.scope_id, chat_channel_secret_enc=box.encrypt(settings.kommo_chat_channel_secret),
    )
    async with sessions() as session:
        session.add(connection)
        await session.commit()
    return account, connection


async def get_connection(sessions: Sessions, org_id: uuid.UUID) -> KommoConnection | None:
    """The org's connection row as stored now."""
    async with sessions() as session:
        return await session.scalar(select(KommoConnection).where(KommoConnection.org_id == org_id))


async def inbox_rows(sessions: Sessions, org_id: uuid.UUID) -> list[InboxEvent]:
    """Every inbox row of the org."""
    async with sessions() as session:
        return list((await session.scalars(select(InboxEvent).where(InboxEvent.org_id == org_id))).all())


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20, interval: float = 0.05) -> None:
    """Poll ``check`` until it holds (workflows finish in the background)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
