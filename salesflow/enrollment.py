"""Who enters a sequence: the enrolment rules applied to leads and the pending rows written for them.

Shared by the enrolments API and the trigger action ``enroll_in_sequence``, so both apply exactly
the same rules. Nothing here commits or talks to Temporal: the caller commits, then starts the
workflows (directly for a few leads, through ``BulkEnrollmentWorkflow`` for many).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EnrollmentStatus, Lead, Sequence
from db.repositories.sequences import EnrollmentRepository, SequenceRepository
from domain.sequences import (
    EnrollmentRefusal,
    EnrollmentRules,
    ExitReason,
    OtherEnrollment,
    PriorEnrollments,
    check_enrollment,
)
from salesflow.sequence_facts import lead_facts
from workflows.ids import sequence_enrollment_id


@dataclass(frozen=True)
class EnrollOutcome:
    """One lead's answer: enrolled (with the new row) or why not."""

    lead_id: uuid.UUID
    kommo_lead_id: int
    enrolled: bool
    reason: str | None = None
    enrollment_id: uuid.UUID | None = None
    workflow_id: str | None = None


def _rules(stored: object) -> EnrollmentRules:
    try:
        return EnrollmentRules.model_validate(stored or {})
    except ValueError:
        return EnrollmentRules()


async def enroll_leads(
    session: AsyncSession,
    org_id: uuid.UUID,
    sequence: Sequence,
    leads: Seq[Lead],
    *,
    source: str,
    request_id: uuid.UUID | None,
    now: datetime,
) -> list[EnrollOutcome]:
    """Apply the sequence's rules to each lead and write a pending enrolment for those admitted.

    Serialised per agent (a transaction-scoped advisory lock) because exclusivity spans the agent's
    sequences: two concurrent requests must not both admit a lead into two exclusive sequences.
    """
    assert sequence.current_version_id is not None
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"enroll:{sequence.agent_id}"})
    rules = _rules(sequence.rules)
    repo = EnrollmentRepository(session, org_id)
    history = await repo.history_for(sequence.agent_id, [lead.id for lead in leads])
    elsewhere_ids = {seq for _, seq, status in history if seq != sequence.id and status == EnrollmentStatus.active}
    exclusive = {seq: _rules(r).exclusive for seq, r in (await SequenceRepository(session, org_id)
                                                          .rules_of(elsewhere_ids)).items()}
    prior: dict[uuid.UUID, PriorEnrollments] = {}
    for lead in leads:
        mine = [(seq, status) for lid, seq, status in history if lid == lead.id]
        prior[lead.id] = PriorEnrollments(
            active_here=any(seq == sequence.id and st == EnrollmentStatus.active for seq, st in mine),
            ever_here=any(seq == sequence.id for seq, _ in mine),
            active_elsewhere=tuple(
                OtherEnrollment(sequence_id=seq, exclusive=exclusive.get(seq, False))
                for seq, st in mine if seq != sequence.id and st == EnrollmentStatus.active
            ),
        )

    outcomes: dict[uuid.UUID, EnrollOutcome] = {}
    admitted: list[Lead] = []
    restart: list[uuid.UUID] = []
    for lead in leads:
        verdict = check_enrollment(rules, lead_facts(lead), prior[lead.id], exclusive_here=rules.exclusive,
                                   last_contacted_at=lead.last_contacted_at, now=now)
        if not verdict.allowed:
            outcomes[lead.id] = EnrollOutcome(lead.id, lead.kommo_id, False, verdict.reason.value if verdict.reason
                                              else None)
            continue
        admitted.append(lead)
        if verdict.restart:
            restart.append(lead.id)
    if restart:
        # any_time: the running enrolment ends here (the new run replaces the old one's workflow).
        old = await repo.live_for_leads(sequence.id, restart)
        await repo.mark_finished([row.id for row in old], EnrollmentStatus.cancelled, ExitReason.reenrolled.value)

    rows = [
        {
            "id": uuid.uuid4(), "sequence_id": sequence.id, "version_id": sequence.current_version_id,
            "agent_id": sequence.agent_id, "lead_id": lead.id, "status": EnrollmentStatus.pending,
            "workflow_id": sequence_enrollment_id(org_id, sequence.id, lead.id), "source": source,
            "request_id": request_id,
        }
        for lead in admitted
    ]
    inserted = await repo.insert_pending(rows)
    by_lead = {row["lead_id"]: row for row in rows}
    for lead in admitted:
        if lead.id in inserted:
            outcomes[lead.id] = EnrollOutcome(lead.id, lead.kommo_id, True, None, inserted[lead.id],
                                              str(by_lead[lead.id]["workflow_id"]))
        else:
            # Enrolled by a concurrent request between our read and our insert.
            outcomes[lead.id] = EnrollOutcome(lead.id, lead.kommo_id, False, EnrollmentRefusal.already_active.value)
    return [outcomes[lead.id] for lead in leads]
