"""Kommo side effects: sync our CRM mirror, re-fetch leads for events, and act on leads.

Every call goes through ``KommoAccess`` (token refresh under a row lock, Postgres-shared rate
limit). The Kommo clients never retry; a ``KommoError`` becomes an ``ApplicationError`` whose
``non_retryable``/``next_retry_delay`` tell Temporal what to do (429 -> retry after Retry-After,
5xx/timeout -> retry, other 4xx -> fail for good).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.models import ConnectionStatus
from db.repositories.kommo import CrmMirrorRepository, InboxRepository, KommoConnectionRepository, PipelineRow
from integrations.crypto import SecretBox
from integrations.kommo.client import KommoClient
from integrations.kommo.errors import KommoError, KommoNotFound, KommoUnauthorized
from integrations.kommo.models import Contact, Lead, LeadsPage
from salesflow.crm_schedule import delete_crm_sync_schedule, upsert_crm_sync_schedule
from salesflow.kommo import KommoAccess, KommoNotConnected
from salesflow.schedules import schedules_unsupported
from salesflow.settings import Settings
from salesflow.trigger_schedule import delete_trigger_clock_schedule, upsert_trigger_clock_schedule
from workflows.crm_models import (
    AddNoteInput,
    AddTagInput,
    CreateTaskInput,
    CrmActionResult,
    FetchLeadInput,
    FinishSyncInput,
    LeadsBatchInput,
    LeadsBatchResult,
    LeadSnapshot,
    OrgInput,
    PipelineCounts,
    RecordOutcomeInput,
    SetLeadFieldInput,
    SyncPlan,
    UpdateLeadStatusInput,
)

T = TypeVar("T")

# Incremental syncs re-read this much before the last checkpoint: clocks and Kommo's second-
# granular updated_at must not make us miss a change made while the previous sync ran.
SYNC_OVERLAP_SECONDS = 300


def application_error(exc: KommoError) -> ApplicationError:
    """The Temporal view of a Kommo failure: retryable or not, and after how long."""
    delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
    return ApplicationError(
        f"Kommo {exc}",
        type=type(exc).__name__,
        non_retryable=not exc.retryable,
        next_retry_delay=delay,
    )


def lead_values(lead: Lead, contact: Contact | None = None) -> dict[str, Any]:
    """Columns of our lead mirror from a Kommo lead (and its main contact, when fetched)."""
    values: dict[str, Any] = {
        "kommo_id": lead.id,
        "name": lead.name[:255],
        "pipeline_kommo_id": lead.pipeline_id,
        "status_kommo_id": lead.status_id,
        "responsible_user_kommo_id": lead.responsible_user_id,
        "price": lead.price,
        "tags": lead.tags,
        "field_values": {
            str(cf.field_id): [v.value if v.enum_id is None else {"value": v.value, "enum_id": v.enum_id}
                               for v in cf.values]
            for cf in lead.custom_fields_values or []
        },
        "kommo_updated_at": lead.updated_at,
    }
    if contact is not None:
        values["contact_name"] = contact.name[:255] or None
        values["email"] = contact.emails[0][:320] if contact.emails else None
        values["phone"] = contact.phones[0][:64] if contact.phones else None
    return values


async def _leads_page(api: KommoClient, *, page: int, updated_since: int | None) -> LeadsPage:
    # Ordered by id: an update does not move a lead, so pages stay stable while leads change.
    return await api.list_leads(page, updated_since=updated_since, order="id")


class KommoActivities:
    """Kommo activities with their clients injected by the worker."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        box: SecretBox,
        http: httpx.AsyncClient,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.access = KommoAccess(sessions, settings, box, http)

    async def _call(self, org_id: uuid.UUID, op: Callable[[KommoClient], Awaitable[T]]) -> T:
        """Run ``op`` with a fresh client, translating Kommo failures for Temporal."""
        try:
            client = await self.access.client_for(org_id)
        except KommoNotConnected as exc:
            raise ApplicationError(str(exc), type="KommoNotConnected", non_retryable=True) from exc
        except KommoError as exc:
            raise application_error(exc) from exc
        try:
            return await op(client)
        except KommoUnauthorized as exc:
            # The token died before its expiry (revoked, or rotated elsewhere): rotate it unless
            # someone already has, then let Temporal retry with the new one.
            try:
                await self.access.refresh(org_id, seen_token=client.access_token)
            except KommoNotConnected as gone:
                raise ApplicationError(str(gone), type="KommoNotConnected", non_retryable=True) from exc
            except KommoError as refresh_failed:
                raise application_error(refresh_failed) from exc
            raise ApplicationError("Kommo rejected the access token; rotated it", type="KommoUnauthorized") from exc
        except KommoError as exc:
            raise application_error(exc) from exc

    # ------------------------------------------------------------------ sync

    @activity.defn
    async def reconcile_sync_schedule(self, data: OrgInput) -> str:
        """Create/update the org's periodic sync and trigger clock schedules while connected, delete them otherwise."""
        async with self.sessions() as session:
            connection = await KommoConnectionRepository(session, data.org_id).get()
        client = activity.client()
        try:
            if connection is not None and connection.status == ConnectionStatus.connected:
                schedule_id = await upsert_crm_sync_schedule(client, self.settings, data.org_id)
                await upsert_trigger_clock_schedule(client, self.settings, data.org_id)
                return schedule_id
            await delete_crm_sync_schedule(client, data.org_id)
            await delete_trigger_clock_schedule(client, data.org_id)
            return "deleted"
        except Exception as exc:
            if schedules_unsupported(exc):
                # The time-skipping test server has no schedules; nothing to reconcile there.
                return "unsupported"
            raise

    @activity.defn
    async def plan_sync(self, data: OrgInput) -> SyncPlan:
        """Incremental checkpoint (the last successful sync's start minus an overlap) and this sync's start."""
        started_at = datetime.now(UTC)
        async with self.sessions() as session:
            connection = await KommoConnectionRepository(session, data.org_id).get()
        if connection is None or connection.status != ConnectionStatus.connected:
            raise ApplicationError(f"Kommo is not connected for org {data.org_id}", type="KommoNotConnected",
                                   non_retryable=True)
        if connection.last_synced_at is None:
            return SyncPlan(updated_since=None, started_at=started_at)
        since = int(connection.last_synced_at.timestamp()) - SYNC_OVERLAP_SECONDS
        return SyncPlan(updated_since=since, started_at=started_at)

    @activity.defn
    async def sync_pipelines(self, data: OrgInput) -> PipelineCounts:
        """Upsert every pipeline and its statuses (idempotent; vanished ones archived/deleted)."""
        pipelines = await self._call(data.org_id, lambda api: api.list_pipelines())
        rows = [
            PipelineRow(
                kommo_id=p.id, name=p.name[:255], sort=p.sort, is_main=p.is_main, is_archived=p.is_archive,
                statuses=[{"kommo_id": s.id, "name": s.name[:255], "sort": s.sort, "type": s.type,
                           "color": (s.color or None) and s.color[:16]} for s in p.statuses],
            )
            for p in pipelines
        ]
        async with self.sessions() as session:
            written = await CrmMirrorRepository(session, data.org_id).replace_pipelines(rows)
            await session.commit()
        return PipelineCounts(pipelines=written[0], statuses=written[1])

    @activity.defn
    async def sync_users(self, data: OrgInput) -> int:
        """Upsert the account's users (managers leads can be handed to)."""
        users = await self._call(data.org_id, lambda api: api.list_users())
        async with self.sessions() as session:
            count = await CrmMirrorRepository(session, data.org_id).upsert_users(
                {"kommo_id": u.id, "name": u.name[:255] or f"User {u.id}", "email": u.email} for u in users
            )
            await session.commit()
        return count

    @activity.defn
    async def sync_custom_fields(self, data: OrgInput) -> int:
        """Upsert the lead custom field definitions."""
        fields = await self._call(data.org_id, lambda api: api.list_lead_custom_fields())
        async with self.sessions() as session:
            count = await CrmMirrorRepository(session, data.org_id).upsert_custom_fields(
                {"kommo_id": f.id, "name": f.name[:255], "type": f.type[:64], "code": f.code,
                 "enums": [e.model_dump() for e in f.enums or []]}
                for f in fields
            )
            await session.commit()
        return count

    @activity.defn
    async def sync_leads(self, data: LeadsBatchInput) -> LeadsBatchResult:
        """Upsert up to ``max_pages`` pages of leads changed since the checkpoint.

        Pages are ordered by id, which an update does not move, so paging stays stable while leads
        change; each page is committed on its own and a retry simply rewrites the same rows.
        """
        upserted = 0
        page = data.start_page
        for _ in range(data.max_pages):
            batch = await self._call(data.org_id, partial(_leads_page, page=page, updated_since=data.updated_since))
            async with self.sessions() as session:
                repo = CrmMirrorRepository(session, data.org_id)
                for lead in batch.items:
                    await repo.upsert_lead(lead_values(lead))
                await session.commit()
            upserted += len(batch.items)
            activity.heartbeat(page)
            if not batch.has_next:
                return LeadsBatchResult(upserted=upserted, next_page=None)
            page += 1
        return LeadsBatchResult(upserted=upserted, next_page=page)

    @activity.defn
    async def finish_sync(self, data: FinishSyncInput) -> None:
        """Move the incremental checkpoint forward (never backwards)."""
        async with self.sessions() as session:
            connection = await KommoConnectionRepository(session, data.org_id).get()
            if connection is not None and (connection.last_synced_at is None
                                           or connection.last_synced_at < data.started_at):
                connection.last_synced_at = data.started_at
                connection.updated_at = datetime.now(UTC)
            await session.commit()

    # ------------------------------------------------------------------ events

    @activity.defn
    async def fetch_lead(self, data: FetchLeadInput) -> LeadSnapshot:
        """Re-fetch the lead (and its main contact) through the API and upsert our mirror.

        Webhook bodies are unsigned and may be stale, so events act on what Kommo says now.
        """

        async def fetch(api: KommoClient) -> tuple[Lead | None, Contact | None]:
            try:
                lead = await api.get_lead(data.kommo_lead_id, with_contacts=True)
            except KommoNotFound:
                return None, None
            contact = None
            if lead.contact_ids:
                try:
                    contact = await api.get_contact(lead.contact_ids[0])
                except KommoNotFound:
                    contact = None
            return lead, contact

        lead, contact = await self._call(data.org_id, fetch)
        if lead is None:
            return LeadSnapshot(found=False, kommo_id=data.kommo_lead_id)
        async with self.sessions() as session:
            mirror = CrmMirrorRepository(session, data.org_id)
            before = await mirror.get_lead_by_kommo_id(lead.id, for_update=True)
            # Kommo's update webhooks carry no diff: a tag is "added" when our mirror did not have it. A snapshot
            # older than the mirror adds nothing (the upsert ignores it too). A retry after this commit sees no
            # difference any more, so a crash in that instant loses the tag event; it never doubles it.
            stale = before is not None and before.kommo_updated_at is not None and lead.updated_at is not None \
                and lead.updated_at < before.kommo_updated_at
            known = {t.casefold() for t in (before.tags if before is not None else [])}
            added = [] if stale else [t for t in lead.tags if t.casefold() not in known]
            lead_id = await mirror.upsert_lead(lead_values(lead, contact))
            await session.commit()
        return LeadSnapshot(found=True, lead_id=lead_id, kommo_id=lead.id, pipeline_id=lead.pipeline_id,
                            status_id=lead.status_id, name=lead.name, tags=lead.tags, added_tags=added,
                            kommo_updated_at=lead.updated_at)

    @activity.defn
    async def record_event_outcome(self, data: RecordOutcomeInput) -> None:
        """Store how an inbox event was handled (processed_at, outcome, workflow id)."""
        async with self.sessions() as session:
            found = await InboxRepository(session).record_outcome(
                data.inbox_event_id, data.outcome, data.workflow_id, datetime.now(UTC)
            )
            await session.commit()
        if not found:
            raise ApplicationError(f"inbox event {data.inbox_event_id} not found", non_retryable=True)

    # ------------------------------------------------------------------ CRM actions (triggers, sequences)

    @activity.defn
    async def update_lead_status(self, data: UpdateLeadStatusInput) -> CrmActionResult:
        """Move a lead to a stage; repeating it is harmless."""
        result = await self._call(
            data.org_id,
            lambda api: api.update_lead(data.kommo_lead_id, status_id=data.status_id, pipeline_id=data.pipeline_id),
        )
        return CrmActionResult(kommo_lead_id=data.kommo_lead_id, entity_id=result.id,
                               kommo_updated_at=result.updated_at)

    @activity.defn
    async def add_note(self, data: AddNoteInput) -> CrmActionResult:
        """Add a text note to a lead.

        Kommo has no idempotency key for notes: a retry after a lost response can add it twice.
        Callers that must not duplicate should check with ``fetch_lead``-side state first.
        """
        note = await self._call(data.org_id, lambda api: api.add_note(data.kommo_lead_id, data.text))
        return CrmActionResult(kommo_lead_id=data.kommo_lead_id, entity_id=note.id)

    @activity.defn
    async def add_tag(self, data: AddTagInput) -> CrmActionResult:
        """Add tags (Kommo's ``tags_to_add`` keeps existing tags and ignores ones already there)."""
        result = await self._call(data.org_id, lambda api: api.add_tags(data.kommo_lead_id, data.tags))
        return CrmActionResult(kommo_lead_id=data.kommo_lead_id, entity_id=result.id,
                               kommo_updated_at=result.updated_at)

    @activity.defn
    async def create_task(self, data: CreateTaskInput) -> CrmActionResult:
        """Create a task on a lead (same at-least-once caveat as ``add_note``)."""
        task = await self._call(
            data.org_id,
            lambda api: api.add_task(data.kommo_lead_id, data.text, int(data.complete_till.timestamp()),
                                     task_type_id=data.task_type_id,
                                     responsible_user_id=data.responsible_user_id),
        )
        return CrmActionResult(kommo_lead_id=data.kommo_lead_id, entity_id=task.id)

    @activity.defn
    async def set_lead_field(self, data: SetLeadFieldInput) -> CrmActionResult:
        """Set (or, with no value, clear) one custom field of a lead; idempotent."""
        values: list[dict[str, Any]] | None
        if data.enum_id is not None:
            values = [{"enum_id": data.enum_id}]
        elif data.value is None:
            values = None
        else:
            values = [{"value": data.value}]
        result = await self._call(
            data.org_id,
            lambda api: api.update_lead(data.kommo_lead_id,
                                        custom_fields_values=[{"field_id": data.field_id, "values": values}]),
        )
        return CrmActionResult(kommo_lead_id=data.kommo_lead_id, entity_id=result.id,
                               kommo_updated_at=result.updated_at)
