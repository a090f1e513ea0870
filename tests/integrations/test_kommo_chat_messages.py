"""Who wrote a Kommo ``message[add]``: parsed from the form body, mapped to the lead, a manager or nobody."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from api.services.crm_webhook import event_input, safe_event_key
from domain.triggers import TriggerEventType
from integrations.kommo.webhooks import encode_crm_webhook, parse_crm_webhook
from workflows.trigger_models import trigger_events_for


def _message(kind: str | None, author_type: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {"entity": "message", "action": "add", "id": str(uuid.uuid4()), "text": "Is it sunny?",
                             "element_type": "2", "element_id": 77, "chat_id": "c-1", "talk_id": 5}
    if kind is not None:
        event["type"] = kind
    if author_type is not None:
        event["author"] = {"id": "a-1", "type": author_type, "name": "Someone"}
    return event


@pytest.mark.parametrize(("kind", "author_type", "author"), [
    ("incoming", "external", "lead"),
    ("outgoing", "user", "manager"),
    ("outgoing", "internal", "manager"),
    ("outgoing", "bot", None),
    ("outgoing", None, None),
    (None, None, "lead"),
    (None, "contact", "lead"),
    (None, "user", "manager"),
])
def test_a_chat_message_is_the_leads_a_managers_or_ignored(kind: str | None, author_type: str | None,
                                                           author: str | None) -> None:
    body = encode_crm_webhook(1, "acme", [_message(kind, author_type)])
    [event] = parse_crm_webhook(httpx.QueryParams(body).multi_items()).events
    data = event_input(uuid.uuid4(), uuid.uuid4(), safe_event_key(event), event)

    assert (data.lead_kommo_id, data.message_type, data.author_type) == (77, kind, author_type)
    assert data.chat_author() == author
    # Only the lead's own words are an incoming message for triggers.
    expected = [TriggerEventType.incoming_message] if author == "lead" else []
    assert [e.type for _, e in trigger_events_for(data)] == expected
