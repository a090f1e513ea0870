"""Handing committed outbox rows to their delivery workflow."""

from __future__ import annotations

import uuid

import structlog
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from workflows.email_delivery import EmailDeliveryWorkflow
from workflows.email_delivery_models import DeliverEmail
from workflows.ids import TASK_QUEUE, email_delivery_id

log = structlog.get_logger(__name__)


async def start_email_delivery(
    client: Client | None, settings: Settings, org_id: uuid.UUID, outbox_id: uuid.UUID, summary: str
) -> str | None:
    """Start ``email/{outbox}`` for a committed row; a repeated start joins the existing run.

    Returns the workflow id, or None when Temporal could not be reached (the row stays queued and
    the failure is logged). Called after the response is sent, so it must not raise.
    """
    if client is None:
        log.warning("email delivery not started: no Temporal client", outbox_id=str(outbox_id))
        return None
    try:
        handle = await client.start_workflow(
            EmailDeliveryWorkflow.run,
            DeliverEmail(org_id=org_id, outbox_id=outbox_id),
            id=email_delivery_id(outbox_id),
            task_queue=TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=run_search_attributes(settings, org_id=org_id),
            static_summary=summary,
        )
    except Exception as exc:
        log.warning("email delivery not started", outbox_id=str(outbox_id), error=str(exc))
        return None
    return handle.id
