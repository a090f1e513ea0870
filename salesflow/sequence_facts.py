"""Rows of our database as the sequence domain sees them (shared by API services and activities)."""

from __future__ import annotations

from db.models import Lead, Organization, Sequence
from domain.conditions import LeadFacts
from domain.schedule import SendWindow
from domain.sequences import send_window_for


def lead_facts(lead: Lead) -> LeadFacts:
    """Our lead mirror as conditions, rules and templates see it."""
    return LeadFacts(
        lead_id=lead.id, kommo_id=lead.kommo_id, name=lead.name, price=lead.price, email=lead.email,
        phone=lead.phone, contact_name=lead.contact_name, pipeline_id=lead.pipeline_kommo_id,
        status_id=lead.status_kommo_id, time_zone=lead.time_zone, tags=tuple(lead.tags or ()),
        fields=dict(lead.field_values or {}), opted_out=lead.opted_out,
    )


def window_for(org: Organization, sequence: Sequence, lead: Lead) -> SendWindow:
    """The send window of a lead in a sequence, from the rows as they are now."""
    return send_window_for(
        org_time_zone=org.time_zone, org_hours=org.business_hours, org_holidays=org.holidays or [],
        override=sequence.send_window, lead_time_zone=lead.time_zone,
    )
