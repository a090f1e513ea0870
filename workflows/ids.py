"""Task queue names and business-keyed workflow ids: the same business fact always maps to one id."""

from __future__ import annotations

import uuid

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

TASK_QUEUE = "salesflow"

ORG_ID = SearchAttributeKey.for_keyword("OrgId")
AGENT_ID = SearchAttributeKey.for_keyword("AgentId")
LEAD_ID = SearchAttributeKey.for_keyword("LeadId")
SEQUENCE_ID = SearchAttributeKey.for_keyword("SequenceId")


def onboarding_id(org_id: uuid.UUID) -> str:
    """One onboarding run per organisation."""
    return f"onboarding/{org_id}"


def email_delivery_id(outbox_id: uuid.UUID) -> str:
    """One delivery run per outbox row, so a repeated start cannot send a message twice."""
    return f"email/{outbox_id}"


def crm_sync_id(org_id: uuid.UUID) -> str:
    """One CRM sync at a time per organisation."""
    return f"crm-sync/{org_id}"


def crm_event_id(org_id: uuid.UUID, event_key: str) -> str:
    """One run per inbound CRM event, so a redelivered webhook cannot act twice."""
    return f"crm-event/{org_id}/{event_key}"


def billing_event_id(event_id: str) -> str:
    """One run per Stripe event id (Stripe ids are globally unique)."""
    return f"billing-event/{event_id}"


def trigger_clock_id(org_id: uuid.UUID) -> str:
    """The organisation's hourly trigger clock (its schedule appends each tick's time)."""
    return f"trigger-clock/{org_id}"


def sequence_enrollment_id(org_id: uuid.UUID, sequence_id: uuid.UUID, lead_id: uuid.UUID) -> str:
    """One live enrolment of a lead in a sequence."""
    return f"sequence/{org_id}/{sequence_id}/{lead_id}"


def conversation_id(org_id: uuid.UUID, lead_id: uuid.UUID) -> str:
    """One conversation entity per lead."""
    return f"conversation/{org_id}/{lead_id}"


def search_attributes(
    *,
    org_id: uuid.UUID,
    agent_id: uuid.UUID | None = None,
    lead_id: uuid.UUID | None = None,
    sequence_id: uuid.UUID | None = None,
) -> TypedSearchAttributes:
    """Search attributes operators filter runs by in the Temporal UI."""
    pairs = [SearchAttributePair(ORG_ID, str(org_id))]
    for key, value in ((AGENT_ID, agent_id), (LEAD_ID, lead_id), (SEQUENCE_ID, sequence_id)):
        if value is not None:
            pairs.append(SearchAttributePair(key, str(value)))
    return TypedSearchAttributes(pairs)
