"""Kommo CRM webhook intake: authenticate, parse, dedupe into the inbox, hand each new event to a workflow.

Kommo waits 2 s and retries a failed delivery for hours, so the intake does as little as it must:
one lookup, one multi-row ``INSERT .. ON CONFLICT DO NOTHING``, a commit, and concurrent workflow
starts (never awaiting their results). A redelivery of an event whose workflow never started (we
answered 503) starts it then; one whose workflow exists is dropped by the workflow id policy.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.errors import BadRequest, NotFound, ProblemError, ServiceUnavailable
from db.base import utcnow
from db.models import ConnectionStatus, KommoConnection
from db.repositories.kommo import KOMMO_CRM_SOURCE, InboxRepository, InboxRow, KommoConnectionRepository
from integrations.kommo.webhooks import MAX_PAIRS, CrmEvent, WebhookParseError, parse_crm_webhook
from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from workflows.crm_event import CrmEventWorkflow
from workflows.crm_models import CrmEventInput
from workflows.ids import TASK_QUEUE, crm_event_id

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9:._-]{1,160}$")
# Connections whose webhooks we accept; a pending one has no account to re-fetch from.
_ACCEPTING = (ConnectionStatus.connected, ConnectionStatus.needs_reconnect)
# Compared against when the org has no connection; no real secret (43 url-safe characters) equals it.
_NO_SECRET = "!" * 43


class BodyTooLarge(ProblemError):
    """The webhook body exceeds what any Kommo webhook needs."""

    status, title, type_slug = 413, "Content Too Large", "too-large"


async def read_limited(chunks: AsyncIterator[bytes], limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (413) to buffer more than ``limit`` bytes."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"The webhook body is larger than {limit} bytes.")
    return bytes(body)


class WebhookRejected(NotFound):
    """Missing org, missing or wrong secret, disconnected: one indistinguishable 404."""

    def __init__(self) -> None:
        super().__init__("Not Found")


def safe_event_key(event: CrmEvent) -> str:
    """``event_key`` when it is short and plain; else a digest (message ids are free text from the body)."""
    key = event.event_key
    if _PLAIN_KEY.match(key):
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"{event.account_id}:{event.entity}:{event.action}:h{digest}"


def _parse_body(body: bytes) -> list[CrmEvent]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PAIRS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The webhook body is not form-encoded UTF-8.") from exc
    if any("\x00" in key or "\x00" in value for key, value in pairs):
        raise BadRequest("The webhook body contains NUL characters.")
    try:
        return parse_crm_webhook(pairs).events
    except WebhookParseError as exc:
        raise BadRequest(f"The webhook body is malformed: {exc}") from exc


async def _authenticate(session: AsyncSession, org: str | None, secret: str | None) -> KommoConnection:
    try:
        org_id = uuid.UUID(org or "")
    except ValueError:
        raise WebhookRejected() from None
    connection = await KommoConnectionRepository(session, org_id).get()
    # Compare even when there is no row, so a wrong org costs the same as a wrong secret.
    expected = connection.webhook_secret if connection is not None else _NO_SECRET
    matches = hmac.compare_digest(expected.encode(), (secret or "").encode())
    if connection is None or not matches or not secret or connection.status not in _ACCEPTING:
        raise WebhookRejected()
    return connection


def event_input(org_id: uuid.UUID, inbox_id: uuid.UUID, key: str, event: CrmEvent) -> CrmEventInput:
    """The workflow input of one stored event."""
    return CrmEventInput(
        org_id=org_id, inbox_event_id=inbox_id, event_key=key, entity=event.entity, action=event.action,
        entity_id=str(event.entity_id), lead_kommo_id=event.lead_id, contact_kommo_id=event.contact_id,
        status_id=event.status_id, pipeline_id=event.pipeline_id, old_status_id=event.old_status_id,
        text=event.text, chat_id=event.chat_id, talk_id=event.talk_id, message_type=event.message_type,
        author_type=event.author_type, author_name=event.author_name,
    )


async def start_event_workflow(client: Client, settings: Settings, data: CrmEventInput) -> str:
    """Start ``crm-event/{org}/{key}`` once: a running one is reused, a finished one is not rerun."""
    workflow_id = crm_event_id(data.org_id, data.event_key)
    try:
        handle: WorkflowHandle[CrmEventWorkflow, object] = await client.start_workflow(
            CrmEventWorkflow.run,
            data,
            id=workflow_id,
            task_queue=TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=run_search_attributes(settings, org_id=data.org_id),
            static_summary=f"Kommo {data.entity} {data.action} {data.entity_id}",
        )
    except WorkflowAlreadyStartedError:
        return workflow_id
    return handle.id


async def receive_crm_webhook(
    session: AsyncSession, client: Client, settings: Settings, org: str | None, secret: str | None, body: bytes
) -> tuple[int, int]:
    """Store the body's events and start a workflow for each new one; returns (accepted, duplicates)."""
    connection = await _authenticate(session, org, secret)
    org_id = connection.org_id
    events = _parse_body(body)
    if connection.account_id is not None and any(e.account_id != connection.account_id for e in events):
        raise BadRequest("The webhook is from another Kommo account than the connected one.")

    by_key: dict[str, CrmEvent] = {}
    for event in events:
        by_key.setdefault(safe_event_key(event), event)
    rows = [
        InboxRow(
            # Prefixed by org: two orgs connected to one Kommo account each get the event.
            external_key=f"{org_id}:{key}",
            event_type=f"{event.entity}.{event.action}",
            payload=event.model_dump(mode="json"),
            workflow_id=crm_event_id(org_id, key),
        )
        for key, event in by_key.items()
    ]
    inbox = InboxRepository(session)
    new = await inbox.insert_new(org_id, KOMMO_CRM_SOURCE, rows, utcnow())
    seen_before = [r.external_key for r in rows if r.external_key not in new]
    # Redeliveries whose workflow may never have started (a 503 earlier) get their start retried.
    pending = await inbox.unprocessed(KOMMO_CRM_SOURCE, seen_before)
    await session.commit()

    prefix = f"{org_id}:"
    to_start = {**pending, **new}
    inputs = [event_input(org_id, inbox_id, ext[len(prefix):], by_key[ext[len(prefix):]])
              for ext, inbox_id in to_start.items()]
    results = await asyncio.gather(*(start_event_workflow(client, settings, i) for i in inputs),
                                   return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        log.error("crm event workflows not started", org_id=str(org_id), failed=len(failed), error=str(failed[0]))
        # Kommo will redeliver; the rows are stored and unprocessed, so the retry starts them.
        raise ServiceUnavailable("Could not hand the events to the workflow engine; retry later.")
    return len(new), len(rows) - len(new) + (len(events) - len(by_key))
