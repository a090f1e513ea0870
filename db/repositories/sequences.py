"""SQL of sequences, versions, enrolments, the step log, send counters, triggers and their executions.

Every repository is constructed with ``(session, org_id)`` and filters every query by it.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable
from collections.abc import Sequence as Seq
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import (
    Agent,
    AgentChannel,
    AgentStatus,
    Enrollment,
    EnrollmentRequest,
    EnrollmentStatus,
    EnrollmentStepLog,
    KommoConnection,
    Lead,
    Organization,
    SendCounter,
    Sequence,
    SequenceStatus,
    SequenceVersion,
    Trigger,
    TriggerExecution,
)
from db.models.sequences import LIVE_ENROLLMENT_STATUSES
from db.pagination import InvalidCursorError, Page, paginate

_LIVE = [s.value for s in LIVE_ENROLLMENT_STATUSES]
LIVE_INDEX_PREDICATE = text("status IN ('pending', 'active', 'paused')")


# ---- sequences ----------------------------------------------------------------------------------


def _encode_position_cursor(position: int, row_id: uuid.UUID) -> str:
    raw = json.dumps([position, str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_position_cursor(cursor: str) -> tuple[int, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(position, int):
            raise TypeError("position")
        return position, uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise InvalidCursorError("cursor is not valid") from exc


class SequenceRepository:
    """Sequences and their versions; archived sequences are invisible unless asked for."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    def _scoped(self, agent_id: uuid.UUID | None, include_archived: bool) -> Select[Sequence]:
        stmt = select(Sequence).where(Sequence.org_id == self.org_id)
        if agent_id is not None:
            stmt = stmt.where(Sequence.agent_id == agent_id)
        if not include_archived:
            stmt = stmt.where(Sequence.status != SequenceStatus.archived)
        return stmt

    async def get(
        self, sequence_id: uuid.UUID, agent_id: uuid.UUID | None = None, *, include_archived: bool = False,
        for_update: bool = False,
    ) -> Sequence | None:
        """The sequence if it is this organisation's (and ``agent_id``'s when given)."""
        stmt = self._scoped(agent_id, include_archived).where(Sequence.id == sequence_id)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)

    async def list_for_agent(self, agent_id: uuid.UUID, *, limit: int, cursor: str | None) -> Page[Sequence]:
        """In the agent's order (``position``), keyset-paginated on (position, id)."""
        stmt = self._scoped(agent_id, False)
        if cursor:
            position, row_id = _decode_position_cursor(cursor)
            stmt = stmt.where(or_(Sequence.position > position,
                                  and_(Sequence.position == position, Sequence.id > row_id)))
        stmt = stmt.order_by(Sequence.position, Sequence.id).limit(limit + 1)
        rows = list((await self.session.scalars(stmt)).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = _encode_position_cursor(rows[-1].position, rows[-1].id)
        return Page(items=rows, next_cursor=next_cursor)

    async def live_for_agent(self, agent_id: uuid.UUID) -> list[Sequence]:
        """Every sequence of the agent that is not archived, in order, locked for a replace."""
        stmt = self._scoped(agent_id, False).order_by(Sequence.position, Sequence.id).with_for_update()
        return list((await self.session.scalars(stmt)).all())

    async def next_position(self, agent_id: uuid.UUID) -> int:
        """One after the agent's last position."""
        stmt = select(func.max(Sequence.position)).where(Sequence.org_id == self.org_id, Sequence.agent_id == agent_id)
        current = await self.session.scalar(stmt)
        return 0 if current is None else int(current) + 1

    async def add(self, sequence: Sequence) -> Sequence:
        """Stage a new sequence of this organisation."""
        sequence.org_id = self.org_id
        self.session.add(sequence)
        await self.session.flush()
        return sequence

    async def add_version(
        self, sequence: Sequence, steps: list[dict[str, Any]], exit_criteria: dict[str, Any]
    ) -> SequenceVersion:
        """Freeze a new version and make it current (the caller holds the sequence row lock)."""
        version = SequenceVersion(
            org_id=self.org_id, sequence_id=sequence.id, number=sequence.current_version + 1, steps=steps,
            exit_criteria=exit_criteria,
        )
        self.session.add(version)
        await self.session.flush()
        sequence.current_version_id = version.id
        sequence.current_version = version.number
        sequence.updated_at = utcnow()
        return version

    async def get_version(self, version_id: uuid.UUID) -> SequenceVersion | None:
        """A version of one of this organisation's sequences."""
        return await self.session.scalar(
            select(SequenceVersion).where(SequenceVersion.org_id == self.org_id, SequenceVersion.id == version_id)
        )

    async def rules_of(self, sequence_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        """Stored rules of several sequences (exclusivity checks)."""
        ids = list(set(sequence_ids))
        if not ids:
            return {}
        rows = await self.session.execute(
            select(Sequence.id, Sequence.rules).where(Sequence.org_id == self.org_id, Sequence.id.in_(ids))
        )
        return {row.id: row.rules for row in rows}


# ---- leads, org, agent (read-only views this feature needs) -------------------------------------


class SequenceContextRepository:
    """The rows a sequence step reads besides its own: organisation, agent, lead, connection, channel."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def organization(self) -> Organization | None:
        """The organisation itself."""
        return await self.session.get(Organization, self.org_id)

    async def agent(self, agent_id: uuid.UUID) -> Agent | None:
        """A live (not deleted) agent of this organisation."""
        return await self.session.scalar(
            select(Agent).where(Agent.org_id == self.org_id, Agent.id == agent_id, Agent.deleted_at.is_(None))
        )

    async def lead(self, lead_id: uuid.UUID, *, for_update: bool = False) -> Lead | None:
        """A lead of this organisation."""
        stmt = select(Lead).where(Lead.org_id == self.org_id, Lead.id == lead_id)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)

    async def lead_by_kommo_id(self, kommo_id: int) -> Lead | None:
        """A lead by its Kommo id."""
        return await self.session.scalar(select(Lead).where(Lead.org_id == self.org_id, Lead.kommo_id == kommo_id))

    async def leads(self, lead_ids: Seq[uuid.UUID], kommo_ids: Seq[int]) -> list[Lead]:
        """Leads of this organisation among the given ids and Kommo ids (unknown ones are simply absent)."""
        if not lead_ids and not kommo_ids:
            return []
        conditions = []
        if lead_ids:
            conditions.append(Lead.id.in_(list(lead_ids)))
        if kommo_ids:
            conditions.append(Lead.kommo_id.in_(list(kommo_ids)))
        stmt = select(Lead).where(Lead.org_id == self.org_id, or_(*conditions))
        return list((await self.session.scalars(stmt)).all())

    async def connection(self) -> KommoConnection | None:
        """The organisation's Kommo connection."""
        return await self.session.scalar(select(KommoConnection).where(KommoConnection.org_id == self.org_id))

    async def channel_settings(self, agent_id: uuid.UUID, channel: str) -> dict[str, Any] | None:
        """``settings`` of the agent's channel row (``daily_send_cap`` lives there), None without a row."""
        stmt = select(AgentChannel.settings).where(
            AgentChannel.org_id == self.org_id, AgentChannel.agent_id == agent_id,
            AgentChannel.channel == channel,
        )
        row = await self.session.execute(stmt)
        found = row.first()
        return None if found is None else dict(found[0] or {})


# ---- enrolments -------------------------------------------------------------------------------


class EnrollmentRepository:
    """Enrolments of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(
        self, enrollment_id: uuid.UUID, sequence_id: uuid.UUID | None = None, *, for_update: bool = False
    ) -> Enrollment | None:
        """The enrolment (of ``sequence_id`` when given)."""
        stmt = select(Enrollment).where(Enrollment.org_id == self.org_id, Enrollment.id == enrollment_id)
        if sequence_id is not None:
            stmt = stmt.where(Enrollment.sequence_id == sequence_id)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)

    async def list_for_sequence(
        self, sequence_id: uuid.UUID, *, limit: int, cursor: str | None,
        status: EnrollmentStatus | None = None, lead_id: uuid.UUID | None = None,
    ) -> Page[Enrollment]:
        """Newest first, filtered by status and lead."""
        stmt = select(Enrollment).where(Enrollment.org_id == self.org_id, Enrollment.sequence_id == sequence_id)
        if status is not None:
            stmt = stmt.where(Enrollment.status == status)
        if lead_id is not None:
            stmt = stmt.where(Enrollment.lead_id == lead_id)
        return await paginate(self.session, stmt, Enrollment, limit=limit, cursor=cursor)

    async def history_for(
        self, agent_id: uuid.UUID, lead_ids: Seq[uuid.UUID]
    ) -> list[tuple[uuid.UUID, uuid.UUID, EnrollmentStatus]]:
        """(lead, sequence, status) of every enrolment of these leads in the agent's sequences.

        One row per (lead, sequence, live-or-not) is enough for the rules, so the query groups.
        """
        if not lead_ids:
            return []
        live = Enrollment.status.in_(_LIVE)
        stmt = (
            select(Enrollment.lead_id, Enrollment.sequence_id, func.bool_or(live).label("live"))
            .where(Enrollment.org_id == self.org_id, Enrollment.agent_id == agent_id,
                   Enrollment.lead_id.in_(list(lead_ids)))
            .group_by(Enrollment.lead_id, Enrollment.sequence_id)
        )
        rows = await self.session.execute(stmt)
        return [
            (row.lead_id, row.sequence_id, EnrollmentStatus.active if row.live else EnrollmentStatus.completed)
            for row in rows
        ]

    async def live_for_leads(self, sequence_id: uuid.UUID, lead_ids: Seq[uuid.UUID]) -> list[Enrollment]:
        """The live enrolments of these leads in one sequence, locked (re-enrolment cancels them)."""
        if not lead_ids:
            return []
        stmt = (
            select(Enrollment)
            .where(Enrollment.org_id == self.org_id, Enrollment.sequence_id == sequence_id,
                   Enrollment.lead_id.in_(list(lead_ids)), Enrollment.status.in_(_LIVE))
            .with_for_update()
        )
        return list((await self.session.scalars(stmt)).all())

    async def insert_pending(self, rows: Seq[dict[str, Any]]) -> dict[uuid.UUID, uuid.UUID]:
        """Insert pending enrolments; a lead with a live one already is skipped. Returns lead -> enrolment id.

        The partial unique index decides (ON CONFLICT DO NOTHING), so two concurrent requests cannot
        both enrol the same lead.
        """
        if not rows:
            return {}
        stmt = (
            insert(Enrollment)
            .values([{**row, "org_id": self.org_id} for row in rows])
            # The predicate must be literal SQL: Postgres infers a partial index only from a constant one.
            .on_conflict_do_nothing(index_elements=["sequence_id", "lead_id"], index_where=LIVE_INDEX_PREDICATE)
            .returning(Enrollment.lead_id, Enrollment.id)
        )
        result = await self.session.execute(stmt)
        return {row.lead_id: row.id for row in result}

    async def batch(
        self, *, request_id: uuid.UUID | None, sequence_id: uuid.UUID | None, statuses: Seq[EnrollmentStatus],
        after_id: uuid.UUID | None, limit: int,
    ) -> list[Enrollment]:
        """Up to ``limit`` enrolments of a request or a sequence with ids after ``after_id``, by id."""
        stmt = select(Enrollment).where(Enrollment.org_id == self.org_id, Enrollment.status.in_(list(statuses)))
        if request_id is not None:
            stmt = stmt.where(Enrollment.request_id == request_id)
        if sequence_id is not None:
            stmt = stmt.where(Enrollment.sequence_id == sequence_id)
        if after_id is not None:
            stmt = stmt.where(Enrollment.id > after_id)
        stmt = stmt.order_by(Enrollment.id).limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def live_for_lead(
        self, lead_id: uuid.UUID, *, agent_id: uuid.UUID | None = None, sequence_ids: Seq[uuid.UUID] = ()
    ) -> list[Enrollment]:
        """The lead's live enrolments (of one agent, of some sequences)."""
        stmt = select(Enrollment).where(
            Enrollment.org_id == self.org_id, Enrollment.lead_id == lead_id, Enrollment.status.in_(_LIVE)
        )
        if agent_id is not None:
            stmt = stmt.where(Enrollment.agent_id == agent_id)
        if sequence_ids:
            stmt = stmt.where(Enrollment.sequence_id.in_(list(sequence_ids)))
        return list((await self.session.scalars(stmt.order_by(Enrollment.created_at))).all())

    async def mark_finished(
        self, enrollment_ids: Seq[uuid.UUID], status: EnrollmentStatus, exit_reason: str | None,
        *, only_statuses: Seq[EnrollmentStatus] = LIVE_ENROLLMENT_STATUSES,
    ) -> int:
        """Finish enrolments still in ``only_statuses`` (a run that already finished keeps its outcome)."""
        if not enrollment_ids:
            return 0
        now = utcnow()
        stmt = (
            update(Enrollment)
            .where(Enrollment.org_id == self.org_id, Enrollment.id.in_(list(enrollment_ids)),
                   Enrollment.status.in_(list(only_statuses)))
            .values(status=status, exit_reason=exit_reason, finished_at=now, next_action_at=None, updated_at=now)
        )
        result = await self.session.execute(stmt)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def begin(self, enrollment_id: uuid.UUID) -> None:
        """A pending enrolment's workflow is running: it becomes active (a cancelled one stays cancelled)."""
        now = utcnow()
        await self.session.execute(
            update(Enrollment)
            .where(Enrollment.org_id == self.org_id, Enrollment.id == enrollment_id,
                   Enrollment.status == EnrollmentStatus.pending)
            .values(status=EnrollmentStatus.active, started_at=now, updated_at=now)
        )

    async def progress(self, enrollment_id: uuid.UUID, values: dict[str, Any], *, finished: bool) -> None:
        """Apply a progress update; a finished enrolment is never moved back to a live status."""
        now = utcnow()
        if finished:
            values = {**values, "finished_at": now}
        # Only live rows move: a row finished elsewhere (re-enrolled, cancelled before its run started)
        # keeps the outcome it was given.
        stmt = update(Enrollment).where(
            Enrollment.org_id == self.org_id, Enrollment.id == enrollment_id, Enrollment.status.in_(_LIVE)
        )
        await self.session.execute(stmt.values(**values, updated_at=now))


class EnrollmentRequestRepository:
    """Enrolment POSTs by Idempotency-Key."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get_by_key(self, key: str) -> EnrollmentRequest | None:
        """The earlier request with this key."""
        return await self.session.scalar(
            select(EnrollmentRequest).where(EnrollmentRequest.org_id == self.org_id,
                                            EnrollmentRequest.idempotency_key == key)
        )

    async def create(self, sequence_id: uuid.UUID, key: str | None, request_hash: str) -> EnrollmentRequest | None:
        """A new request row, or None when another request already holds ``key``.

        With a key, INSERT .. ON CONFLICT DO NOTHING waits for a concurrent holder of the same key to
        commit, so the loser reads the winner's stored answer instead of enrolling twice.
        """
        request_id = uuid.uuid4()
        stmt = (
            insert(EnrollmentRequest)
            .values(id=request_id, org_id=self.org_id, sequence_id=sequence_id, idempotency_key=key,
                    request_hash=request_hash)
            .on_conflict_do_nothing(index_elements=["org_id", "idempotency_key"])
            .returning(EnrollmentRequest.id)
        )
        created = await self.session.scalar(stmt)
        if created is None:
            return None
        return await self.session.get(EnrollmentRequest, created)


# ---- the step log and send counters -----------------------------------------------------------


class StepLogRepository:
    """The enrolment step log, keyed by the idempotency key of each step execution."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def claim(self, enrollment_id: uuid.UUID, step_id: str, step_key: str, kind: str,
                    **values: Any) -> EnrollmentStepLog:
        """The row of ``step_key``, created if missing, locked for this transaction."""
        await self.session.execute(
            insert(EnrollmentStepLog)
            .values(id=uuid.uuid4(), org_id=self.org_id, enrollment_id=enrollment_id, step_id=step_id,
                    step_key=step_key, kind=kind, **values)
            .on_conflict_do_nothing(index_elements=["step_key"])
        )
        row = await self.session.scalar(
            select(EnrollmentStepLog)
            .where(EnrollmentStepLog.org_id == self.org_id, EnrollmentStepLog.step_key == step_key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert row is not None  # inserted above or by an earlier attempt
        return row

    async def claim_existing(self, step_key: str) -> EnrollmentStepLog | None:
        """The row of ``step_key`` locked for this transaction, if there is one."""
        return await self.session.scalar(
            select(EnrollmentStepLog)
            .where(EnrollmentStepLog.org_id == self.org_id, EnrollmentStepLog.step_key == step_key)
            .with_for_update()
        )

    async def write_once(self, enrollment_id: uuid.UUID, step_id: str, step_key: str, kind: str,
                         **values: Any) -> None:
        """Insert unless the key exists (a replayed local activity writes nothing new)."""
        await self.session.execute(
            insert(EnrollmentStepLog)
            .values(id=uuid.uuid4(), org_id=self.org_id, enrollment_id=enrollment_id, step_id=step_id,
                    step_key=step_key, kind=kind, **values)
            .on_conflict_do_nothing(index_elements=["step_key"])
        )

    async def for_enrollment(self, enrollment_id: uuid.UUID) -> list[EnrollmentStepLog]:
        """Every log row of an enrolment, oldest first."""
        stmt = (
            select(EnrollmentStepLog)
            .where(EnrollmentStepLog.org_id == self.org_id, EnrollmentStepLog.enrollment_id == enrollment_id)
            .order_by(EnrollmentStepLog.created_at, EnrollmentStepLog.id)
        )
        return list((await self.session.scalars(stmt)).all())


class SendCounterRepository:
    """Booked sends per (agent, channel, day); the daily cap is enforced by the increment itself."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def usage(self, agent_id: uuid.UUID, channel: str, from_day: date) -> dict[date, int]:
        """Booked counts from ``from_day`` on."""
        rows = await self.session.execute(
            select(SendCounter.day, SendCounter.count).where(
                SendCounter.org_id == self.org_id, SendCounter.agent_id == agent_id, SendCounter.channel == channel,
                SendCounter.day >= from_day,
            )
        )
        return {row[0]: int(row[1]) for row in rows}

    async def book(self, agent_id: uuid.UUID, channel: str, day: date, limit: int | None) -> bool:
        """Add one send to ``day`` unless that makes it exceed ``limit``; whether it was booked.

        One statement (insert, or increment guarded by ``count < limit``) so concurrent workers can
        never book past the cap.
        """
        stmt = insert(SendCounter).values(
            id=uuid.uuid4(), org_id=self.org_id, agent_id=agent_id, channel=channel, day=day, count=1
        )
        if limit is not None and limit < 1:
            return False
        guard = SendCounter.count < limit if limit is not None else None
        upsert = stmt.on_conflict_do_update(
            index_elements=["org_id", "agent_id", "channel", "day"],
            set_={"count": SendCounter.count + 1, "updated_at": utcnow()},
            where=guard,
        ).returning(SendCounter.count)
        return await self.session.scalar(upsert) is not None

    async def release(self, agent_id: uuid.UUID, channel: str, day: date) -> None:
        """Give one booked send back."""
        await self.session.execute(
            update(SendCounter)
            .where(SendCounter.org_id == self.org_id, SendCounter.agent_id == agent_id,
                   SendCounter.channel == channel, SendCounter.day == day, SendCounter.count > 0)
            .values(count=SendCounter.count - 1, updated_at=utcnow())
        )


# ---- triggers ---------------------------------------------------------------------------------


class TriggerRepository:
    """Triggers of one organisation and their executions."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self, trigger_id: uuid.UUID, agent_id: uuid.UUID) -> Trigger | None:
        """The agent's trigger."""
        return await self.session.scalar(
            select(Trigger).where(Trigger.org_id == self.org_id, Trigger.agent_id == agent_id, Trigger.id == trigger_id)
        )

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, enabled: bool | None = None,
        event_type: str | None = None,
    ) -> Page[Trigger]:
        """Newest first, filtered by enabled and event type."""
        stmt = select(Trigger).where(Trigger.org_id == self.org_id, Trigger.agent_id == agent_id)
        if enabled is not None:
            stmt = stmt.where(Trigger.enabled == enabled)
        if event_type is not None:
            stmt = stmt.where(Trigger.event_type == event_type)
        return await paginate(self.session, stmt, Trigger, limit=limit, cursor=cursor)

    async def add(self, trigger: Trigger) -> Trigger:
        """Stage a new trigger of this organisation."""
        trigger.org_id = self.org_id
        self.session.add(trigger)
        await self.session.flush()
        return trigger

    async def delete(self, trigger: Trigger) -> None:
        """Delete a trigger (its executions go with it)."""
        await self.session.delete(trigger)
        await self.session.flush()

    async def armed(self, event_type: str) -> list[Trigger]:
        """Enabled triggers of active, live agents for one event type, oldest first (a stable order)."""
        stmt = (
            select(Trigger)
            .join(Agent, and_(Agent.id == Trigger.agent_id, Agent.org_id == Trigger.org_id))
            .where(Trigger.org_id == self.org_id, Trigger.enabled.is_(True), Trigger.event_type == event_type,
                   Agent.deleted_at.is_(None), Agent.status == AgentStatus.active)
            .order_by(Trigger.created_at, Trigger.id)
        )
        return list((await self.session.scalars(stmt)).all())

    async def execution_counts(self, lead_id: uuid.UUID, trigger_ids: Seq[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Executions per trigger for one lead."""
        if not trigger_ids:
            return {}
        rows = await self.session.execute(
            select(TriggerExecution.trigger_id, func.count())
            .where(TriggerExecution.org_id == self.org_id, TriggerExecution.lead_id == lead_id,
                   TriggerExecution.trigger_id.in_(list(trigger_ids)))
            .group_by(TriggerExecution.trigger_id)
        )
        return {row[0]: int(row[1]) for row in rows}

    async def triggers_fired_by(self, lead_id: uuid.UUID, event_key: str) -> list[uuid.UUID]:
        """Triggers that already have an execution for this (lead, event)."""
        rows = await self.session.scalars(
            select(TriggerExecution.trigger_id).where(TriggerExecution.org_id == self.org_id,
                                                      TriggerExecution.lead_id == lead_id,
                                                      TriggerExecution.event_key == event_key)
        )
        return list(rows.all())

    async def claim(
        self, trigger_id: uuid.UUID, lead_id: uuid.UUID, event_key: str, limit: int | None
    ) -> tuple[bool, TriggerExecution | None]:
        """Record an execution unless the lead is at the limit. Returns (newly claimed, the execution row).

        A transaction-scoped advisory lock per (trigger, lead) serialises concurrent events for the
        same lead, so the count check and the insert cannot interleave; a redelivered event finds its
        own row (same key) and reports it as not new.
        """
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"trigger:{trigger_id}:{lead_id}"}
        )
        existing = await self.session.scalar(
            select(TriggerExecution).where(TriggerExecution.trigger_id == trigger_id,
                                           TriggerExecution.lead_id == lead_id,
                                           TriggerExecution.event_key == event_key)
        )
        if existing is not None:
            return False, existing
        if limit is not None:
            count = await self.session.scalar(
                select(func.count()).select_from(TriggerExecution).where(
                    TriggerExecution.trigger_id == trigger_id, TriggerExecution.lead_id == lead_id)
            )
            if int(count or 0) >= limit:
                return False, None
        execution = TriggerExecution(org_id=self.org_id, trigger_id=trigger_id, lead_id=lead_id, event_key=event_key)
        self.session.add(execution)
        await self.session.flush()
        return True, execution
