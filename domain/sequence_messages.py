"""Message text of sequence steps and trigger actions: lead variables, validation, rendering. Pure.

Texts are templates rendered in the same sandbox as email templates (``domain.templates``), with a
fixed set of lead variables, so a step can say ``Hi {{ first_name }}`` and nothing more dangerous.
Kept apart from ``domain.sequences`` because Jinja is not something workflow code needs to import:
rendering happens in the send activity, with the lead as it is at send time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.conditions import LeadFacts
from domain.sequences import AddNote, AiFollowUpStep, CrmActionStep, NotifyStep, SendMessageStep, Step
from domain.templates import (
    EmailTemplateSource,
    TemplateValidationError,
    render_email,
    validate_template,
)

__all__ = ["LEAD_VARIABLES", "MessageProblem", "lead_variables", "render_text", "validate_step_texts", "validate_text"]

LEAD_VARIABLES: tuple[str, ...] = (
    "name", "first_name", "contact_name", "email", "phone", "price", "tags", "fields", "agent_name",
)
"""What a message template may use: the lead's name and contact data, tags, custom fields by id."""


@dataclass(frozen=True)
class MessageProblem:
    """A template that cannot be saved; ``path`` is relative to the steps list."""

    path: str
    message: str


def _source(text: str) -> EmailTemplateSource:
    return EmailTemplateSource(subject="", body_html="", body_text=text, variables=LEAD_VARIABLES)


def validate_text(text: str) -> list[str]:
    """Problems of one template text (empty when it may be saved)."""
    try:
        validate_template(_source(text))
    except TemplateValidationError as exc:
        return [p.message for p in exc.problems]
    return []


def _texts(step: Step) -> Iterable[tuple[str, str]]:
    if isinstance(step, SendMessageStep):
        if step.text is not None:
            yield "text", step.text
        for i, variant in enumerate(step.variants):
            yield f"variants[{i}].text", variant.text
    elif isinstance(step, AiFollowUpStep) and step.fallback_text is not None:
        yield "fallback_text", step.fallback_text
    elif isinstance(step, CrmActionStep) and isinstance(step.action, AddNote):
        yield "action.text", step.action.text
    elif isinstance(step, NotifyStep):
        yield "title", step.title
        yield "body", step.body


def validate_step_texts(steps: Iterable[Step]) -> list[MessageProblem]:
    """Template problems of every text of every step, with paths like ``steps[1].variants[0].text``."""
    problems: list[MessageProblem] = []
    for i, step in enumerate(steps):
        for field, text in _texts(step):
            problems += [MessageProblem(f"steps[{i}].{field}", message) for message in validate_text(text)]
    return problems


def lead_variables(lead: LeadFacts, *, agent_name: str = "") -> dict[str, Any]:
    """The values templates see for a lead."""
    contact = lead.contact_name or lead.name
    return {
        "name": lead.name,
        "first_name": (contact.split() or [""])[0],
        "contact_name": contact,
        "email": lead.email or "",
        "phone": lead.phone or "",
        "price": lead.price if lead.price is not None else "",
        "tags": list(lead.tags),
        "fields": {key: lead.value_of(key) for key in lead.fields},
        "agent_name": agent_name,
    }


def render_text(text: str, values: Mapping[str, Any]) -> str:
    """Render a stored template; raises ``TemplateRenderError`` (or its refused subclass) if it cannot be."""
    return render_email(_source(text), values).body_text
