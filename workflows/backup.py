"""DatabaseBackupWorkflow: a custom-format ``pg_dump`` of the whole database, keeping the newest N."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.backup import BackupActivities
    from workflows.backup_models import BackupInput, BackupResult


@workflow.defn
class DatabaseBackupWorkflow:
    """``backup/{backup id}``: dump the database to the backup directory and prune old dumps."""

    @workflow.run
    async def run(self, data: BackupInput) -> BackupResult:
        """One activity; a dump of a large database takes minutes, so it heartbeats while pg_dump runs."""
        return await workflow.execute_activity_method(
            BackupActivities.dump_database, data, start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=30), maximum_attempts=3),
        )
