"""The events an organisation can subscribe its webhook endpoints to. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

__all__ = ["EVENT_TYPES", "EventType", "subscribed"]

EventType = Literal[
    "lead.opted_out", "conversation.handoff", "conversation.resumed", "billing.plan_changed", "webhook.test"
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


def subscribed(endpoint_events: Iterable[str], event_type: str) -> bool:
    """Whether an endpoint listening to ``endpoint_events`` (empty: every event) receives ``event_type``.

    ``webhook.test`` always reaches the endpoint it was sent to: it is how an integrator checks the wiring.
    """
    events = list(endpoint_events)
    return event_type == "webhook.test" or not events or event_type in events
