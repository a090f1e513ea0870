"""Jobs are workflows started on request; their status is Temporal's, read back for the organisation that owns them."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.errors import Conflict, NotFound
from api.schemas.jobs import JobRead, JobType
from api.services.kommo import start_crm_sync
from db.models import ConnectionStatus
from db.repositories.kommo import KommoConnectionRepository
from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from workflows.crm_models import CrmSyncInput
from workflows.crm_sync import CrmSyncWorkflow
from workflows.ids import TASK_QUEUE, crm_sync_id, trigger_clock_id
from workflows.trigger_clock import TriggerClockWorkflow
from workflows.trigger_clock_models import TriggerClockInput

# Workflow id prefixes a job status may be asked for, and the job type each one is.
JOB_KINDS = {"crm-sync": "crm_sync", "trigger-clock": "trigger_clock", "bulk-enrollment": "bulk_enrollment",
             "onboarding": "onboarding"}
STATUSES = {
    WorkflowExecutionStatus.RUNNING: "running", WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed", WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.TERMINATED: "terminated", WorkflowExecutionStatus.TIMED_OUT: "timed_out",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued_as_new",
}


class JobService:
    """Start and inspect one organisation's jobs."""

    def __init__(self, session: AsyncSession, client: Client, settings: Settings, org_id: uuid.UUID) -> None:
        self.session = session
        self.client = client
        self.settings = settings
        self.org_id = org_id

    async def start(self, job: JobType) -> JobRead:
        """Start the job (a running sync is joined, not doubled) and return its first status."""
        connection = await KommoConnectionRepository(self.session, self.org_id).get()
        if connection is None or connection.status != ConnectionStatus.connected:
            raise Conflict("Connect Kommo first: every job works on the organisation's Kommo data.")
        if job == "crm_sync":
            workflow_id = await start_crm_sync(self.client, self.settings, self.org_id, reason="job")
        elif job == "crm_full_sync":
            sync = await self.client.start_workflow(
                CrmSyncWorkflow.run, CrmSyncInput(org_id=self.org_id, full=True), id=crm_sync_id(self.org_id),
                task_queue=TASK_QUEUE, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=run_search_attributes(self.settings, org_id=self.org_id),
                static_summary="Full CRM sync (job)")
            workflow_id = sync.id
        else:
            # Its own id next to the scheduled ticks (those end in their scheduled time), one per request.
            tick = await self.client.start_workflow(
                TriggerClockWorkflow.run, TriggerClockInput(org_id=self.org_id),
                id=f"{trigger_clock_id(self.org_id)}/job-{uuid.uuid4().hex[:12]}", task_queue=TASK_QUEUE,
                search_attributes=run_search_attributes(self.settings, org_id=self.org_id),
                static_summary="Trigger clock tick (job)")
            workflow_id = tick.id
        return await self.status(workflow_id)

    async def status(self, job_id: str) -> JobRead:
        """The job's status; another organisation's job (or no such job) is 404."""
        parts = job_id.split("/")
        if len(parts) < 2 or parts[0] not in JOB_KINDS or parts[1] != str(self.org_id):
            raise NotFound("Job not found.")
        try:
            description = await self.client.get_workflow_handle(job_id).describe()
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise NotFound("Job not found.") from exc
            raise
        status = STATUSES.get(description.status) if description.status is not None else None
        return JobRead(job_id=job_id, type=JOB_KINDS[parts[0]], status=status or "running",
                       started_at=description.start_time, closed_at=description.close_time,
                       temporal_url=self.settings.temporal_run_url(job_id))
