"""Starting and cancelling enrolment workflows in batches (the bulk fan-out's side effects)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from db.models import Enrollment, EnrollmentStatus
from db.repositories.sequences import EnrollmentRepository, SequenceContextRepository, SequenceRepository
from salesflow.sequences import EnrollmentStart, enrollment_summary, request_cancel, start_enrollment_workflow
from salesflow.settings import Settings
from workflows.sequence_models import BatchInput, BatchResult, BulkOperation

T = TypeVar("T")

# Starts in flight at once per batch: enough to keep the frontend busy, few enough not to trip its
# per-namespace rate limits when several batches run.
CONCURRENCY = 20


class EnrollmentActivities:
    """Temporal-client side effects on enrolment workflows, for the bulk workflow and triggers."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    @activity.defn(name="enrollments.run_batch")
    async def run_batch(self, data: BatchInput) -> BatchResult:
        """Start the next batch of a request's pending enrolments, or cancel the next batch of a sequence's.

        Idempotent: starting is keyed by the workflow id and the enrolment in its memo, cancelling by
        the enrolment the run belongs to; rows are read by id after ``after_id``.
        """
        async with self.sessions() as session:
            repo = EnrollmentRepository(session, data.org_id)
            if data.operation == BulkOperation.start:
                rows = await repo.batch(request_id=data.request_id, sequence_id=None,
                                        statuses=[EnrollmentStatus.pending], after_id=data.after_id, limit=data.limit)
            else:
                rows = await repo.batch(request_id=None, sequence_id=data.sequence_id,
                                        statuses=[EnrollmentStatus.pending, EnrollmentStatus.active,
                                                  EnrollmentStatus.paused],
                                        after_id=data.after_id, limit=data.limit)
            starts = await self._starts(session, data, rows) if data.operation == BulkOperation.start else []
        client = activity.client()
        if data.operation == BulkOperation.start:
            await _gather([start_enrollment_workflow(client, self.settings, start,
                                                     task_queue=activity.info().task_queue) for start in starts])
        else:
            await self._cancel(client, data, rows)
        last = rows[-1].id if len(rows) == data.limit else None
        return BatchResult(processed=len(rows), last_id=last)

    async def _starts(self, session: AsyncSession, data: BatchInput, rows: list[Enrollment]) -> list[EnrollmentStart]:
        context = SequenceContextRepository(session, data.org_id)
        sequences = SequenceRepository(session, data.org_id)
        names: dict[object, str] = {}
        starts: list[EnrollmentStart] = []
        leads = {lead.id: lead for lead in await context.leads([r.lead_id for r in rows], [])}
        for row in rows:
            if row.sequence_id not in names:
                sequence = await sequences.get(row.sequence_id, include_archived=True)
                names[row.sequence_id] = sequence.name if sequence else "?"
            lead = leads.get(row.lead_id)
            if lead is None:
                continue
            starts.append(EnrollmentStart(
                org_id=row.org_id, agent_id=row.agent_id, sequence_id=row.sequence_id, lead_id=row.lead_id,
                enrollment_id=row.id, summary=enrollment_summary(names[row.sequence_id], lead),
            ))
        return starts

    async def _cancel(self, client: Client, data: BatchInput, rows: list[Enrollment]) -> None:
        results = await _gather([request_cancel(client, row.workflow_id, row.id, data.cancel_reason) for row in rows])
        # Rows with no live run (pending, or a run that already ended without recording) are finished here.
        orphans = [row.id for row, asked in zip(rows, results, strict=True) if not asked]
        if orphans:
            async with self.sessions() as session:
                await EnrollmentRepository(session, data.org_id).mark_finished(
                    orphans, EnrollmentStatus.cancelled, data.cancel_reason.value
                )
                await session.commit()


async def _gather(calls: list[Awaitable[T]]) -> list[T]:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def bounded(call: Awaitable[T]) -> T:
        async with semaphore:
            return await call

    return list(await asyncio.gather(*(bounded(c) for c in calls)))
