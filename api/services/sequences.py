"""Sequences of an agent: definitions (versioned), enrolments and their runs, triggers.

Decisions a caller can rely on:

* Every change of ``steps`` or ``exit_criteria`` freezes a new version; enrolments keep the version
  they started with. Name, status, rules and the send window are properties of the sequence and
  apply at once (rules to new enrolments, the window to sends not yet made).
* DELETE archives the sequence and cancels its running enrolments (a bulk workflow does the
  cancelling, so a sequence with 10,000 enrolments is archived in one quick request). Archived
  sequences disappear from lists and answer 404; their enrolments stay readable in the database.
* Enrolment requests of up to :data:`INLINE_START_LIMIT` admitted leads start their workflows in the
  request; larger ones hand the starts to ``BulkEnrollmentWorkflow``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Sequence as Seq
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from api.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from api.schemas.sequences import (
    EnrollmentAction,
    EnrollmentBatchRead,
    EnrollmentCreate,
    EnrollmentDetail,
    EnrollmentRead,
    EnrollmentResult,
    SequenceCreate,
    SequenceItem,
    SequenceRead,
    SequenceUpdate,
    TriggerCreate,
    TriggerRead,
    TriggerUpdate,
)
from db.base import utcnow
from db.models import (
    Agent,
    Enrollment,
    EnrollmentRequest,
    EnrollmentStatus,
    Lead,
    Sequence,
    SequenceStatus,
    SequenceVersion,
    Trigger,
)
from db.models.sequences import LIVE_ENROLLMENT_STATUSES
from db.pagination import InvalidCursorError, Page
from db.repositories.agents import AgentRepository
from db.repositories.sequences import (
    EnrollmentRepository,
    EnrollmentRequestRepository,
    SequenceContextRepository,
    SequenceRepository,
    TriggerRepository,
)
from domain.sequence_messages import validate_step_texts, validate_text
from domain.sequences import ExitReason, Step, validate_graph
from domain.triggers import (
    AssignAgentAction,
    EnrollInSequenceAction,
    SendMessageAction,
    StopSequencesAction,
    TriggerAction,
)
from salesflow.enrollment import EnrollOutcome, enroll_leads
from salesflow.sequences import (
    EnrollmentStart,
    enrollment_handle,
    enrollment_summary,
    start_enrollment_workflow,
)
from salesflow.settings import Settings
from salesflow.temporal import run_search_attributes
from workflows.bulk_enrollment import BulkEnrollmentWorkflow
from workflows.ids import TASK_QUEUE
from workflows.sequence_enrollment import SequenceEnrollmentWorkflow
from workflows.sequence_models import (
    BulkEnrollmentInput,
    BulkOperation,
    CancelRequest,
    EnrollmentState,
    PauseRequest,
    ResumeRequest,
    SkipRequest,
)

INLINE_START_LIMIT = 25
"""Enrolment requests admitting more leads than this start their workflows through a bulk workflow."""
START_CONCURRENCY = 10


def bulk_workflow_id(org_id: uuid.UUID, key: str) -> str:
    """``bulk-enrollment/{org}/{key}``: one fan-out per request (or per archived sequence)."""
    return f"bulk-enrollment/{org_id}/{key}"


def _cursor_error(exc: InvalidCursorError) -> BadRequest:
    return BadRequest("cursor is not valid", errors=[{"field": "query.cursor", "message": str(exc)}])


def _dump_steps(steps: Seq[Step]) -> list[dict[str, Any]]:
    return [step.model_dump(mode="json", by_alias=True, exclude_none=True) for step in steps]


def _check_steps(steps: Seq[Step], prefix: str) -> None:
    """400 with a field path for every graph or template problem."""
    errors = [{"field": f"{prefix}.{p.path}", "message": p.message} for p in validate_graph(steps)]
    errors += [{"field": f"{prefix}.{p.path}", "message": p.message} for p in validate_step_texts(steps)]
    if errors:
        raise BadRequest("The sequence steps are invalid; see errors.", errors=errors)


class _AgentScoped:
    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id
        self.sequences = SequenceRepository(session, org_id)

    async def _agent(self, agent_id: uuid.UUID) -> Agent:
        agent = await AgentRepository(self.session, self.org_id).get(agent_id)
        if agent is None:
            raise NotFound("Agent not found.")
        return agent

    async def _sequence(self, agent_id: uuid.UUID, sequence_id: uuid.UUID, *, for_update: bool = False) -> Sequence:
        await self._agent(agent_id)
        sequence = await self.sequences.get(sequence_id, agent_id, for_update=for_update)
        if sequence is None:
            raise NotFound("Sequence not found.")
        return sequence


# ---- sequences ----------------------------------------------------------------------------------


class SequenceService(_AgentScoped):
    """Sequence definitions of an agent."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, temporal: Client | None = None,
                 settings: Settings | None = None) -> None:
        super().__init__(session, org_id)
        self.temporal = temporal
        self.settings = settings

    async def read(self, sequence: Sequence, version: SequenceVersion | None = None) -> SequenceRead:
        """The API view: the sequence and its current version's definition."""
        if version is None and sequence.current_version_id is not None:
            version = await self.sequences.get_version(sequence.current_version_id)
        return SequenceRead(
            id=sequence.id, agent_id=sequence.agent_id, name=sequence.name, description=sequence.description,
            status=sequence.status, position=sequence.position, version=sequence.current_version,
            version_id=sequence.current_version_id, steps=version.steps if version else [],
            rules=sequence.rules, exit_criteria=version.exit_criteria if version else {},
            send_window=sequence.send_window, created_at=sequence.created_at, updated_at=sequence.updated_at,
        )

    async def list_for_agent(
        self, agent_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> tuple[list[SequenceRead], str | None]:
        """The agent's sequences in order."""
        await self._agent(agent_id)
        try:
            page: Page[Sequence] = await self.sequences.list_for_agent(agent_id, limit=limit, cursor=cursor)
        except InvalidCursorError as exc:
            raise _cursor_error(exc) from exc
        return [await self.read(s) for s in page.items], page.next_cursor

    async def create(self, agent_id: uuid.UUID, body: SequenceCreate, *, position: int | None = None,
                     prefix: str = "body") -> SequenceRead:
        """A new sequence with version 1."""
        await self._agent(agent_id)
        _check_steps(body.steps, prefix)
        sequence = await self.sequences.add(Sequence(
            agent_id=agent_id, name=body.name, description=body.description, status=SequenceStatus(body.status),
            position=await self.sequences.next_position(agent_id) if position is None else position,
            rules=body.rules.model_dump(mode="json"),
            send_window=body.send_window.to_storage() if body.send_window else None,
        ))
        version = await self.sequences.add_version(sequence, _dump_steps(body.steps),
                                                   body.exit_criteria.model_dump(mode="json"))
        return await self.read(sequence, version)

    async def update(self, agent_id: uuid.UUID, sequence_id: uuid.UUID, body: SequenceUpdate,
                     *, prefix: str = "body") -> SequenceRead:
        """Apply a partial update; a definition change freezes a new version."""
        sequence = await self._sequence(agent_id, sequence_id, for_update=True)
        await self._apply(sequence, body, prefix)
        return await self.read(sequence)

    async def _apply(self, sequence: Sequence, body: SequenceUpdate, prefix: str) -> None:
        sent = body.model_fields_set
        if body.steps is not None:
            _check_steps(body.steps, prefix)
        for field in ("name", "description"):
            if field in sent:
                setattr(sequence, field, getattr(body, field))
        if body.status is not None:
            sequence.status = SequenceStatus(body.status)
        if body.rules is not None:
            sequence.rules = body.rules.model_dump(mode="json")
        if "send_window" in sent:
            sequence.send_window = body.send_window.to_storage() if body.send_window else None
        if body.steps is not None or body.exit_criteria is not None:
            current = await self.sequences.get_version(sequence.current_version_id) \
                if sequence.current_version_id else None
            steps = _dump_steps(body.steps) if body.steps is not None else (current.steps if current else [])
            exits = body.exit_criteria.model_dump(mode="json") if body.exit_criteria is not None \
                else (current.exit_criteria if current else {})
            if current is None or steps != current.steps or exits != current.exit_criteria:
                await self.sequences.add_version(sequence, steps, exits)
        sequence.updated_at = utcnow()
        await self.session.flush()

    async def replace(self, agent_id: uuid.UUID, items: Seq[SequenceItem]) -> list[SequenceRead]:
        """Reorder, change, create and archive in one go (see ``SequencesReplace``)."""
        await self._agent(agent_id)
        existing = {s.id: s for s in await self.sequences.live_for_agent(agent_id)}
        seen: set[uuid.UUID] = set()
        for i, item in enumerate(items):
            if item.id is not None and (item.id not in existing or item.id in seen):
                reason = "is listed twice" if item.id in seen else "is not a sequence of this agent"
                raise BadRequest("The sequences are invalid; see errors.",
                                 errors=[{"field": f"body.sequences[{i}].id", "message": f"{item.id} {reason}"}])
            if item.id is not None:
                seen.add(item.id)
        archived = [s for sid, s in existing.items() if sid not in seen]
        result: list[SequenceRead] = []
        for position, item in enumerate(items):
            prefix = f"body.sequences[{position}]"
            if item.id is None:
                assert item.name is not None
                assert item.steps is not None
                create = SequenceCreate.model_validate({
                    "name": item.name, "description": item.description or "", "status": item.status or "active",
                    "steps": item.steps, **({"rules": item.rules} if item.rules else {}),
                    **({"exit_criteria": item.exit_criteria} if item.exit_criteria else {}),
                    **({"send_window": item.send_window} if item.send_window else {}),
                })
                result.append(await self.create(agent_id, create, position=position, prefix=prefix))
            else:
                sequence = existing[item.id]
                await self._apply(sequence, item, prefix)
                sequence.position = position
                result.append(await self.read(sequence))
        for sequence in archived:
            await self._archive(sequence)
        await self.session.flush()
        await self._cancel_enrollments(archived)
        return result

    async def delete(self, agent_id: uuid.UUID, sequence_id: uuid.UUID) -> None:
        """Archive the sequence and cancel its running enrolments."""
        sequence = await self._sequence(agent_id, sequence_id, for_update=True)
        await self._archive(sequence)
        await self._cancel_enrollments([sequence])

    async def retire_agent(self, agent_id: uuid.UUID) -> None:
        """A deleted agent leaves no sequence running: archive its live sequences and cancel their enrolments."""
        sequences = await self.sequences.live_for_agent(agent_id)
        for sequence in sequences:
            await self._archive(sequence)
        await self._cancel_enrollments(sequences)

    async def _archive(self, sequence: Sequence) -> None:
        sequence.status = SequenceStatus.archived
        sequence.archived_at = sequence.updated_at = utcnow()
        await self.session.flush()

    async def _cancel_enrollments(self, sequences: Seq[Sequence]) -> None:
        if not sequences:
            return
        assert self.temporal is not None
        assert self.settings is not None
        # The bulk workflow reads the rows, so the archive must be committed before it starts.
        await self.session.commit()
        for sequence in sequences:
            await self.temporal.start_workflow(
                BulkEnrollmentWorkflow.run,
                BulkEnrollmentInput(org_id=self.org_id, operation=BulkOperation.cancel, sequence_id=sequence.id,
                                    cancel_reason=ExitReason.sequence_archived),
                id=bulk_workflow_id(self.org_id, f"archive-{sequence.id}"), task_queue=TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                search_attributes=run_search_attributes(self.settings, org_id=self.org_id, agent_id=sequence.agent_id,
                                                        sequence_id=sequence.id),
                static_summary=f"Cancel enrolments of archived sequence '{sequence.name}'"[:200],
            )


# ---- enrolments ---------------------------------------------------------------------------------


def _request_hash(sequence_id: uuid.UUID, body: EnrollmentCreate) -> str:
    canonical = json.dumps({"sequence": str(sequence_id), **body.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class EnrollmentService(_AgentScoped):
    """Enrolments of one sequence, and steering their runs."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, temporal: Client, settings: Settings) -> None:
        super().__init__(session, org_id)
        self.temporal = temporal
        self.settings = settings
        self.enrollments = EnrollmentRepository(session, org_id)
        self.requests = EnrollmentRequestRepository(session, org_id)

    async def create(self, agent_id: uuid.UUID, sequence_id: uuid.UUID, body: EnrollmentCreate,
                     idempotency_key: str | None) -> EnrollmentBatchRead:
        """Apply the rules to every lead, write the admitted enrolments and start their workflows."""
        sequence = await self._sequence(agent_id, sequence_id)
        request_hash = _request_hash(sequence.id, body)
        if idempotency_key is not None:
            earlier = await self.requests.get_by_key(idempotency_key)
            if earlier is not None:
                return await self._replay(earlier, request_hash, sequence)
        if sequence.status != SequenceStatus.active:
            raise Conflict("The sequence is paused: it accepts no new enrolments.")
        request = await self.requests.create(sequence.id, idempotency_key, request_hash)
        if request is None:
            assert idempotency_key is not None
            earlier = await self.requests.get_by_key(idempotency_key)
            assert earlier is not None
            return await self._replay(earlier, request_hash, sequence)

        leads = await SequenceContextRepository(self.session, self.org_id).leads(body.lead_ids, body.kommo_lead_ids)
        by_id = {lead.id: lead for lead in leads}
        by_kommo = {lead.kommo_id: lead for lead in leads}
        requested: list[tuple[uuid.UUID | None, int | None, Lead | None]] = [
            *((lid, None, by_id.get(lid)) for lid in body.lead_ids),
            *((None, kid, by_kommo.get(kid)) for kid in body.kommo_lead_ids),
        ]
        unique: dict[uuid.UUID, Lead] = {}
        for _, _, lead in requested:
            if lead is not None:
                unique.setdefault(lead.id, lead)
        outcomes = {o.lead_id: o for o in await enroll_leads(
            self.session, self.org_id, sequence, list(unique.values()), source="api", request_id=request.id,
            now=utcnow())}
        results: list[EnrollmentResult] = []
        answered: set[uuid.UUID] = set()
        for lead_id, kommo_id, lead in requested:
            if lead is None:
                results.append(EnrollmentResult(lead_id=lead_id, kommo_lead_id=kommo_id, enrolled=False,
                                                reason="lead_not_found"))
                continue
            if lead.id in answered:
                results.append(EnrollmentResult(lead_id=lead.id, kommo_lead_id=lead.kommo_id, enrolled=False,
                                                reason="duplicate_in_request"))
                continue
            answered.add(lead.id)
            o = outcomes[lead.id]
            results.append(EnrollmentResult(lead_id=lead.id, kommo_lead_id=lead.kommo_id, enrolled=o.enrolled,
                                            reason=o.reason, enrollment_id=o.enrollment_id, workflow_id=o.workflow_id))
        admitted = [o for o in outcomes.values() if o.enrolled]
        bulk = bulk_workflow_id(self.org_id, str(request.id)) if len(admitted) > INLINE_START_LIMIT else None
        response = EnrollmentBatchRead(request_id=request.id, enrolled=len(admitted),
                                       rejected=len(results) - len(admitted), results=results, bulk_workflow_id=bulk)
        request.response = response.model_dump(mode="json")
        request.bulk_workflow_id = bulk
        # The workflows read the rows: commit them first.
        await self.session.commit()
        await self._start(sequence, request, admitted, unique)
        return response

    async def _replay(self, earlier: EnrollmentRequest, request_hash: str, sequence: Sequence) -> EnrollmentBatchRead:
        if earlier.request_hash != request_hash or earlier.response is None:
            raise Conflict("This Idempotency-Key was already used with a different request.")
        # The first attempt may have committed and then failed to start its workflows: finish the job.
        pending = await self.enrollments.batch(request_id=earlier.id, sequence_id=None,
                                               statuses=[EnrollmentStatus.pending], after_id=None,
                                               limit=INLINE_START_LIMIT + 1)
        if pending:
            leads = {lead.id: lead for lead in await SequenceContextRepository(self.session, self.org_id).leads(
                [row.lead_id for row in pending], [])}
            outcomes = [EnrollOutcome(row.lead_id, 0, True, None, row.id, row.workflow_id) for row in pending]
            await self._start(sequence, earlier, outcomes, leads)
        return EnrollmentBatchRead.model_validate(earlier.response)

    async def _start(self, sequence: Sequence, request: EnrollmentRequest, admitted: Seq[EnrollOutcome],
                     leads: dict[uuid.UUID, Lead]) -> None:
        try:
            if request.bulk_workflow_id is not None:
                await self.temporal.start_workflow(
                    BulkEnrollmentWorkflow.run,
                    BulkEnrollmentInput(org_id=self.org_id, operation=BulkOperation.start, request_id=request.id),
                    id=request.bulk_workflow_id, task_queue=TASK_QUEUE,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    search_attributes=run_search_attributes(self.settings, org_id=self.org_id,
                                                            agent_id=sequence.agent_id, sequence_id=sequence.id),
                    static_summary=f"Enrol {len(admitted)} leads in '{sequence.name}'"[:200],
                )
                return
            semaphore = asyncio.Semaphore(START_CONCURRENCY)

            async def start(outcome: EnrollOutcome) -> None:
                assert outcome.enrollment_id is not None
                lead = leads[outcome.lead_id]
                async with semaphore:
                    await start_enrollment_workflow(self.temporal, self.settings, EnrollmentStart(
                        org_id=self.org_id, agent_id=sequence.agent_id, sequence_id=sequence.id, lead_id=lead.id,
                        enrollment_id=outcome.enrollment_id, summary=enrollment_summary(sequence.name, lead)))

            await asyncio.gather(*(start(o) for o in admitted))
        except RPCError as exc:
            # The rows are committed as pending; repeating the request with the same Idempotency-Key
            # starts whatever did not start.
            raise ServiceUnavailable("The enrolments were recorded but could not all be started; retry with the "
                                     "same Idempotency-Key.") from exc

    async def list_for_sequence(self, agent_id: uuid.UUID, sequence_id: uuid.UUID, *, limit: int, cursor: str | None,
                   status: EnrollmentStatus | None, lead_id: uuid.UUID | None) -> Page[Enrollment]:
        """The sequence's enrolments, newest first (archived sequences included: history stays readable)."""
        await self._agent(agent_id)
        if await self.sequences.get(sequence_id, agent_id, include_archived=True) is None:
            raise NotFound("Sequence not found.")
        try:
            return await self.enrollments.list_for_sequence(sequence_id, limit=limit, cursor=cursor, status=status,
                                                            lead_id=lead_id)
        except InvalidCursorError as exc:
            raise _cursor_error(exc) from exc

    async def _enrollment(self, agent_id: uuid.UUID, sequence_id: uuid.UUID, enrollment_id: uuid.UUID) -> Enrollment:
        await self._agent(agent_id)
        if await self.sequences.get(sequence_id, agent_id, include_archived=True) is None:
            raise NotFound("Sequence not found.")
        enrollment = await self.enrollments.get(enrollment_id, sequence_id)
        if enrollment is None:
            raise NotFound("Enrollment not found.")
        return enrollment

    async def detail(self, enrollment: Enrollment, state: EnrollmentState | None = None) -> EnrollmentDetail:
        """The row, the run's live state (when it has one) and its Temporal UI link."""
        await self.session.refresh(enrollment)
        if state is None and enrollment.status != EnrollmentStatus.pending:
            state = await self._query(enrollment)
        return EnrollmentDetail(**EnrollmentRead.model_validate(enrollment).model_dump(),
                                temporal_url=self.settings.temporal_run_url(enrollment.workflow_id), state=state)

    async def _query(self, enrollment: Enrollment) -> EnrollmentState | None:
        try:
            handle = enrollment_handle(self.temporal, enrollment.workflow_id)
            state = await handle.query(SequenceEnrollmentWorkflow.state)
        except (RPCError, WorkflowQueryFailedError):
            return None
        # The workflow id is shared by the lead's successive enrolments; show only this one's run.
        return state if state.enrollment_id == enrollment.id else None

    async def get(self, agent_id: uuid.UUID, sequence_id: uuid.UUID, enrollment_id: uuid.UUID) -> EnrollmentDetail:
        """One enrolment with its run's state."""
        return await self.detail(await self._enrollment(agent_id, sequence_id, enrollment_id))

    async def act(self, agent_id: uuid.UUID, sequence_id: uuid.UUID, enrollment_id: uuid.UUID,
                  body: EnrollmentAction) -> EnrollmentDetail:
        """Pause, resume or skip through the workflow's validated updates; 409 when the run refuses."""
        enrollment = await self._enrollment(agent_id, sequence_id, enrollment_id)
        if enrollment.status not in (EnrollmentStatus.active, EnrollmentStatus.paused):
            raise Conflict(f"The enrolment is {enrollment.status.value}; only a running one can be steered.")
        handle = enrollment_handle(self.temporal, enrollment.workflow_id)
        try:
            if body.action == "pause":
                state = await handle.execute_update(SequenceEnrollmentWorkflow.pause,
                                                    PauseRequest(enrollment_id=enrollment.id, reason=body.reason))
            elif body.action == "resume":
                state = await handle.execute_update(SequenceEnrollmentWorkflow.resume,
                                                    ResumeRequest(enrollment_id=enrollment.id))
            else:
                state = await handle.execute_update(SequenceEnrollmentWorkflow.skip_step,
                                                    SkipRequest(enrollment_id=enrollment.id, step_id=body.step_id))
        except WorkflowUpdateFailedError as exc:
            raise Conflict(getattr(exc.cause, "message", None) or str(exc.cause)) from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Conflict("The enrolment's run has finished.") from exc
            raise
        return await self.detail(enrollment, state)

    async def cancel(self, agent_id: uuid.UUID, sequence_id: uuid.UUID, enrollment_id: uuid.UUID) -> EnrollmentDetail:
        """Stop an enrolment for good. A waiting run has recorded it when this returns; one in the middle of a
        send ends right after that send (the state's ``exit_reason`` already says ``manual``)."""
        enrollment = await self._enrollment(agent_id, sequence_id, enrollment_id)
        if enrollment.status not in LIVE_ENROLLMENT_STATUSES:
            raise Conflict(f"The enrolment already ended ({enrollment.status.value}).")
        if enrollment.status == EnrollmentStatus.pending:
            # Not started yet: the row decides (a run starting now finds it cancelled and ends at once).
            await self.enrollments.mark_finished([enrollment.id], EnrollmentStatus.cancelled, ExitReason.manual.value)
            await self.session.commit()
            return await self.detail(enrollment)
        handle = enrollment_handle(self.temporal, enrollment.workflow_id)
        try:
            state = await handle.execute_update(SequenceEnrollmentWorkflow.cancel,
                                                CancelRequest(enrollment_id=enrollment.id))
        except WorkflowUpdateFailedError:
            # Refused: the run is already ending (a reply, a won stage...) and records its own reason.
            return await self.detail(enrollment)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            # No run left to ask (it ended without recording, or never started): the row decides.
            await self.enrollments.mark_finished([enrollment.id], EnrollmentStatus.cancelled, ExitReason.manual.value)
            await self.session.commit()
            return await self.detail(enrollment)
        return await self.detail(enrollment, state)


# ---- triggers -----------------------------------------------------------------------------------


class TriggerService(_AgentScoped):
    """Triggers of an agent."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        super().__init__(session, org_id)
        self.triggers = TriggerRepository(session, org_id)

    async def _trigger(self, agent_id: uuid.UUID, trigger_id: uuid.UUID) -> Trigger:
        await self._agent(agent_id)
        trigger = await self.triggers.get(trigger_id, agent_id)
        if trigger is None:
            raise NotFound("Trigger not found.")
        return trigger

    async def _check_actions(self, agent_id: uuid.UUID, actions: Seq[TriggerAction]) -> None:
        """Referenced sequences must be the agent's, agents the organisation's, texts valid templates."""
        errors: list[dict[str, str]] = []
        for i, action in enumerate(actions):
            ids: list[tuple[str, uuid.UUID]] = []
            if isinstance(action, EnrollInSequenceAction):
                ids = [("sequence_id", action.sequence_id)]
            elif isinstance(action, StopSequencesAction):
                ids = [(f"sequence_ids[{j}]", sid) for j, sid in enumerate(action.sequence_ids)]
            for field, sequence_id in ids:
                if await self.sequences.get(sequence_id, agent_id) is None:
                    errors.append({"field": f"body.actions[{i}].{field}", "message": "not a sequence of this agent"})
            if isinstance(action, AssignAgentAction) and action.agent_id is not None and \
                    await AgentRepository(self.session, self.org_id).get(action.agent_id) is None:
                errors.append({"field": f"body.actions[{i}].agent_id", "message": "not an agent of this organization"})
            if isinstance(action, SendMessageAction):
                errors += [{"field": f"body.actions[{i}].text", "message": m} for m in validate_text(action.text)]
        if errors:
            raise BadRequest("The trigger actions are invalid; see errors.", errors=errors)

    async def list_for_agent(self, agent_id: uuid.UUID, *, limit: int, cursor: str | None, enabled: bool | None,
                   event_type: str | None) -> Page[Trigger]:
        """The agent's triggers, newest first."""
        await self._agent(agent_id)
        try:
            return await self.triggers.list_for_agent(agent_id, limit=limit, cursor=cursor, enabled=enabled,
                                                      event_type=event_type)
        except InvalidCursorError as exc:
            raise _cursor_error(exc) from exc

    async def create(self, agent_id: uuid.UUID, body: TriggerCreate) -> TriggerRead:
        """A new trigger."""
        await self._agent(agent_id)
        await self._check_actions(agent_id, body.actions)
        data = body.model_dump(mode="json")
        trigger = await self.triggers.add(Trigger(
            agent_id=agent_id, name=body.name, event_type=body.event.type, event=data["event"],
            conditions=data["conditions"], actions=data["actions"], per_lead_limit=body.per_lead_limit,
            enabled=body.enabled,
        ))
        return TriggerRead.model_validate(trigger)

    async def get(self, agent_id: uuid.UUID, trigger_id: uuid.UUID) -> TriggerRead:
        """One trigger."""
        return TriggerRead.model_validate(await self._trigger(agent_id, trigger_id))

    async def update(self, agent_id: uuid.UUID, trigger_id: uuid.UUID, body: TriggerUpdate) -> TriggerRead:
        """Apply a partial update."""
        trigger = await self._trigger(agent_id, trigger_id)
        if body.actions is not None:
            await self._check_actions(agent_id, body.actions)
        data = body.model_dump(mode="json", exclude_unset=True)
        if "event" in data:
            trigger.event, trigger.event_type = data["event"], data["event"]["type"]
        for field in ("name", "conditions", "actions", "per_lead_limit", "enabled"):
            if field in data:
                setattr(trigger, field, data[field])
        trigger.updated_at = utcnow()
        await self.session.flush()
        await self.session.refresh(trigger)
        return TriggerRead.model_validate(trigger)

    async def delete(self, agent_id: uuid.UUID, trigger_id: uuid.UUID) -> None:
        """Delete a trigger and its execution history."""
        await self.triggers.delete(await self._trigger(agent_id, trigger_id))
