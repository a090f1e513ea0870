"""/api/agents/{id}/sequences: follow-up sequences of an agent, and their enrolments.

Definitions are versioned (see ``api.services.sequences``); enrolments run as
``SequenceEnrollmentWorkflow``s and are listed from our database, which their activities keep current.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response, status

from api.deps import CurrentPrincipal, SessionDep, SettingsDep, TemporalDep
from api.schemas.common import Cursor, Limit, ListResponse
from api.schemas.sequences import (
    EnrollmentAction,
    EnrollmentBatchRead,
    EnrollmentCreate,
    EnrollmentDetail,
    EnrollmentRead,
    SequenceCreate,
    SequenceRead,
    SequencesReplace,
    SequenceUpdate,
)
from api.services.sequences import EnrollmentService, SequenceService
from db.models import EnrollmentStatus

router = APIRouter(prefix="/api/agents/{id}/sequences", tags=["sequences"])

AgentId = Annotated[uuid.UUID, Path(alias="id", description="Agent id")]
SequenceId = Annotated[uuid.UUID, Path(alias="sequenceId")]
EnrollmentId = Annotated[uuid.UUID, Path(alias="enrollmentId")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]


@router.get("", response_model=ListResponse[SequenceRead])
async def list_sequences(
    agent_id: AgentId, principal: CurrentPrincipal, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> ListResponse[SequenceRead]:
    """List the agent's sequences in their order, each with its current version."""
    items, next_cursor = await SequenceService(session, principal.org_id).list_for_agent(
        agent_id, limit=limit, cursor=cursor
    )
    return ListResponse(items=items, next_cursor=next_cursor)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SequenceRead)
async def create_sequence(
    agent_id: AgentId, body: SequenceCreate, principal: CurrentPrincipal, session: SessionDep
) -> SequenceRead:
    """Create a sequence (version 1); cyclic or unreachable step graphs are rejected with paths."""
    return await SequenceService(session, principal.org_id).create(agent_id, body)


@router.put("", response_model=ListResponse[SequenceRead])
async def replace_sequences(
    agent_id: AgentId, body: SequencesReplace, principal: CurrentPrincipal, session: SessionDep,
    temporal: TemporalDep, settings: SettingsDep,
) -> ListResponse[SequenceRead]:
    """Reorder, change and create the agent's sequences; those left out are archived."""
    items = await SequenceService(session, principal.org_id, temporal, settings).replace(agent_id, body.sequences)
    return ListResponse(items=items, next_cursor=None)


@router.patch("/{sequenceId}", response_model=SequenceRead)
async def update_sequence(
    agent_id: AgentId, sequence_id: SequenceId, body: SequenceUpdate, principal: CurrentPrincipal,
    session: SessionDep,
) -> SequenceRead:
    """Change a sequence; new steps or exit criteria become a new version, running enrolments keep theirs."""
    return await SequenceService(session, principal.org_id).update(agent_id, sequence_id, body)


@router.delete("/{sequenceId}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_sequence(
    agent_id: AgentId, sequence_id: SequenceId, principal: CurrentPrincipal, session: SessionDep,
    temporal: TemporalDep, settings: SettingsDep,
) -> Response:
    """Archive a sequence and cancel its running enrolments (in the background, in batches)."""
    await SequenceService(session, principal.org_id, temporal, settings).delete(agent_id, sequence_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---- enrolments ---------------------------------------------------------------------------------


@router.post("/{sequenceId}/enrollments", status_code=status.HTTP_201_CREATED, response_model=EnrollmentBatchRead)
async def create_enrollments(
    agent_id: AgentId, sequence_id: SequenceId, body: EnrollmentCreate, principal: CurrentPrincipal,
    session: SessionDep, temporal: TemporalDep, settings: SettingsDep, idempotency_key: IdempotencyKey = None,
) -> EnrollmentBatchRead:
    """Enrol one lead or a batch; each result says enrolled or why not. Honours ``Idempotency-Key``."""
    return await EnrollmentService(session, principal.org_id, temporal, settings).create(
        agent_id, sequence_id, body, idempotency_key
    )


@router.get("/{sequenceId}/enrollments", response_model=ListResponse[EnrollmentRead])
async def list_enrollments(
    agent_id: AgentId, sequence_id: SequenceId, principal: CurrentPrincipal, session: SessionDep,
    temporal: TemporalDep, settings: SettingsDep, limit: Limit = 50, cursor: Cursor = None,
    status_filter: Annotated[EnrollmentStatus | None, Query(alias="status")] = None,
    lead_id: uuid.UUID | None = None,
) -> ListResponse[EnrollmentRead]:
    """List the sequence's enrolments, newest first, filtered by status and lead."""
    page = await EnrollmentService(session, principal.org_id, temporal, settings).list_for_sequence(
        agent_id, sequence_id, limit=limit, cursor=cursor, status=status_filter, lead_id=lead_id
    )
    return ListResponse(items=[EnrollmentRead.model_validate(e) for e in page.items], next_cursor=page.next_cursor)


@router.get("/{sequenceId}/enrollments/{enrollmentId}", response_model=EnrollmentDetail)
async def get_enrollment(
    agent_id: AgentId, sequence_id: SequenceId, enrollment_id: EnrollmentId, principal: CurrentPrincipal,
    session: SessionDep, temporal: TemporalDep, settings: SettingsDep,
) -> EnrollmentDetail:
    """One enrolment: its row, its run's state (current step, next action, history) and Temporal UI link."""
    return await EnrollmentService(session, principal.org_id, temporal, settings).get(
        agent_id, sequence_id, enrollment_id
    )


@router.patch("/{sequenceId}/enrollments/{enrollmentId}", response_model=EnrollmentDetail)
async def update_enrollment(
    agent_id: AgentId, sequence_id: SequenceId, enrollment_id: EnrollmentId, body: EnrollmentAction,
    principal: CurrentPrincipal, session: SessionDep, temporal: TemporalDep, settings: SettingsDep,
) -> EnrollmentDetail:
    """Pause, resume or skip the current wait of a running enrolment (409 when the run refuses)."""
    return await EnrollmentService(session, principal.org_id, temporal, settings).act(
        agent_id, sequence_id, enrollment_id, body
    )


@router.delete("/{sequenceId}/enrollments/{enrollmentId}", response_model=EnrollmentDetail)
async def cancel_enrollment(
    agent_id: AgentId, sequence_id: SequenceId, enrollment_id: EnrollmentId, principal: CurrentPrincipal,
    session: SessionDep, temporal: TemporalDep, settings: SettingsDep,
) -> EnrollmentDetail:
    """Cancel an enrolment; answers once its run has recorded the cancellation."""
    return await EnrollmentService(session, principal.org_id, temporal, settings).cancel(
        agent_id, sequence_id, enrollment_id
    )
