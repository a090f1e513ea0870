"""What the API and the activities share about sequences: lead facts, send windows, starting and
steering enrolment workflows. One place, so an enrolment started by a request handler, by the bulk
fan-out or by a trigger is started the same way (same id, search attributes, memo, summary).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from db.models import Lead
from domain.sequences import ExitReason
from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from workflows.ids import TASK_QUEUE, sequence_enrollment_id
from workflows.sequence_enrollment import SequenceEnrollmentWorkflow
from workflows.sequence_models import CancelRequest, EnrollmentInput, EnrollmentState

MEMO_ENROLLMENT = "enrollment_id"


@dataclass(frozen=True)
class EnrollmentStart:
    """Everything needed to start the workflow of one enrolment row."""

    org_id: uuid.UUID
    agent_id: uuid.UUID
    sequence_id: uuid.UUID
    lead_id: uuid.UUID
    enrollment_id: uuid.UUID
    summary: str


def enrollment_summary(sequence_name: str, lead: Lead) -> str:
    """The static summary operators read in the Temporal UI."""
    return f"Sequence '{sequence_name}' for lead {lead.name or '(no name)'} (Kommo #{lead.kommo_id})"[:200]


async def start_enrollment_workflow(
    client: Client, settings: Settings, start: EnrollmentStart, task_queue: str = TASK_QUEUE
) -> str:
    """Start the enrolment's workflow; idempotent, and safe when the lead's previous enrolment still runs.

    The workflow id is per (sequence, lead), shared by successive enrolments of the lead. The memo
    names the enrolment a run belongs to: a running run of *this* enrolment means "already started"
    (a retried call), a running run of an *older* enrolment is a leftover whose row was already
    finished (re-enrolment ``any_time``), so it is replaced.
    """
    workflow_id = sequence_enrollment_id(start.org_id, start.sequence_id, start.lead_id)
    data = EnrollmentInput(
        org_id=start.org_id, agent_id=start.agent_id, sequence_id=start.sequence_id, lead_id=start.lead_id,
        enrollment_id=start.enrollment_id,
    )
    attributes = run_search_attributes(
        settings, org_id=start.org_id, agent_id=start.agent_id, lead_id=start.lead_id, sequence_id=start.sequence_id
    )
    memo = {MEMO_ENROLLMENT: str(start.enrollment_id)}
    try:
        await client.start_workflow(
            SequenceEnrollmentWorkflow.run, data, id=workflow_id, task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL, id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=attributes, memo=memo, static_summary=start.summary,
        )
        return workflow_id
    except WorkflowAlreadyStartedError:
        pass
    running = client.get_workflow_handle(workflow_id)
    description = await running.describe()
    owner = (await description.memo()).get(MEMO_ENROLLMENT)
    if owner == str(start.enrollment_id):
        return workflow_id
    await client.start_workflow(
        SequenceEnrollmentWorkflow.run, data, id=workflow_id, task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=attributes, memo=memo, static_summary=start.summary,
    )
    return workflow_id


def enrollment_handle(client: Client, workflow_id: str) -> WorkflowHandle[SequenceEnrollmentWorkflow, EnrollmentState]:
    """Handle of the latest run under an enrolment's workflow id."""
    return client.get_workflow_handle_for(SequenceEnrollmentWorkflow.run, workflow_id)


async def request_cancel(client: Client, workflow_id: str, enrollment_id: uuid.UUID, reason: ExitReason) -> bool:
    """Ask a running enrolment to stop without waiting for it to finish. False when no run of it is live.

    Waits only until the update is accepted (validated), so a batch of cancels is not held up by an
    enrolment busy in a slow activity; the run records its own end.
    """
    handle = enrollment_handle(client, workflow_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        return False
    if (await description.memo()).get(MEMO_ENROLLMENT) != str(enrollment_id):
        return False
    try:
        await handle.start_update(
            SequenceEnrollmentWorkflow.cancel, CancelRequest(enrollment_id=enrollment_id, reason=reason),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
    except WorkflowUpdateFailedError:
        return False  # rejected by the validator: it is already finishing
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            return False  # finished between describe and update
        raise
    return True
