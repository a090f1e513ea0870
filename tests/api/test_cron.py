"""GET /api/cron/backup: a pg_dump of the database through DatabaseBackupWorkflow, once per hour, operators only."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.app import create_app
from salesflow.settings import Settings
from tests.harness import Tenant
from workflows.backup import DatabaseBackupWorkflow

Sessions = async_sessionmaker[AsyncSession]
TenantFactory = Callable[..., Awaitable[Tenant]]


def _old_dumps(directory: Path, n: int) -> list[str]:
    """``n`` earlier dumps, oldest first (their age is their modification time, as pruning reads it)."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for age in range(n, 0, -1):
        path = directory / f"salesflow-old{age}.dump"
        path.write_bytes(b"PGDMP old")
        os.utime(path, (time.time() - age * 86_400,) * 2)
        names.append(path.name)
    return names


def _head(path: Path) -> bytes:
    return path.read_bytes()[:5]


async def test_a_backup_writes_one_restorable_dump_per_hour_and_keeps_the_newest(
    client: httpx.AsyncClient, make_tenant: TenantFactory, settings: Settings, temporal_client: Client
) -> None:
    assert settings.backup_dir is not None
    old = _old_dumps(settings.backup_dir, 4)
    operator = await make_tenant(platform_admin=True)
    first = await client.get("/api/cron/backup", params={"keep": 3}, headers=operator.headers)
    again = await client.get("/api/cron/backup", params={"keep": 3}, headers=operator.headers)
    assert first.status_code == again.status_code == 202, first.text
    workflow_id = first.json()["workflow_id"]
    assert workflow_id == again.json()["workflow_id"] == f"backup/{first.json()['backup_id']}"

    result = await temporal_client.get_workflow_handle_for(DatabaseBackupWorkflow.run, workflow_id).result()
    dump = Path(result.file)
    assert dump.parent == settings.backup_dir
    assert _head(dump) == b"PGDMP"  # pg_dump's custom format, what pg_restore reads
    assert result.bytes > 10_000
    assert sorted(result.pruned) == sorted(old[:2])  # the two oldest go; the newest three stay
    assert sorted(p.name for p in dump.parent.glob("salesflow-*")) == sorted([dump.name, *old[2:]])


async def test_backups_need_the_cron_token_or_a_platform_administrator(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, sessions: Sessions, temporal_client: Client
) -> None:
    assert (await client.get("/api/cron/backup")).status_code == 401
    assert (await client.get("/api/cron/backup", headers=tenant.headers)).status_code == 403
    assert (await client.get("/api/cron/backup", params={"keep": 0}, headers=tenant.headers)).status_code == 400
    token = "cron-" + "c" * 40
    scheduled = create_app(settings.model_copy(update={"cron_token": token}), sessions=sessions,
                           temporal=temporal_client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=scheduled), base_url="http://t") as cron:
        assert (await cron.get("/api/cron/backup", headers={"Authorization": f"Bearer {token}"})).status_code == 202
        assert (await cron.get("/api/cron/backup", headers={"Authorization": "Bearer nope"})).status_code == 401
        bad = await cron.get("/api/cron/backup", params={"keep": 0}, headers={"Authorization": f"Bearer {token}"})
        assert bad.status_code == 400
