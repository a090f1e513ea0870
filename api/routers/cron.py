"""/api/cron: work an external scheduler triggers (a cron job, a platform scheduler): database backups."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import SessionDep, SettingsDep, TemporalDep
from api.services.admin import require_operator
from workflows.backup import DatabaseBackupWorkflow
from workflows.backup_models import BackupInput
from workflows.ids import TASK_QUEUE

router = APIRouter(prefix="/api/cron", tags=["cron"])
_bearer = HTTPBearer(auto_error=False, description="The cron token, or a platform administrator's access token")


class BackupStarted(BaseModel):
    """The backup run (one per hour: calling again within the hour returns the same run)."""

    backup_id: str
    workflow_id: str
    temporal_url: str


@router.get("/backup", response_model=BackupStarted, status_code=status.HTTP_202_ACCEPTED)
async def start_backup(
    settings: SettingsDep, session: SessionDep, temporal: TemporalDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    keep: Annotated[int, Query(ge=1, le=1000, description="Dumps to keep, newest first")] = 14,
) -> BackupStarted:
    """Start a database backup (pg_dump, custom format) unless one already ran this hour."""
    await require_operator(session, settings, credentials.credentials if credentials else None, settings.cron_token)
    backup_id = datetime.now(UTC).strftime("%Y%m%d-%H")
    workflow_id = f"backup/{backup_id}"
    # A finished run of this hour answers "already started": it is the backup the caller asked for.
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await temporal.start_workflow(
            DatabaseBackupWorkflow.run, BackupInput(backup_id=backup_id, keep=keep), id=workflow_id,
            task_queue=TASK_QUEUE, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A retried cron call must not dump twice in an hour; a failed run may be retried.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            static_summary=f"Database backup {backup_id}")
    return BackupStarted(backup_id=backup_id, workflow_id=workflow_id,
                         temporal_url=settings.temporal_run_url(workflow_id))
