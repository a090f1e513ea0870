"""Trigger matching and lead conditions (pure functions)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from domain.conditions import Condition, LeadFacts, evaluate
from domain.triggers import TriggerDefinition, TriggerEvent, TriggerEventType, match_triggers

CONDITION = TypeAdapter(Condition)
LEAD = LeadFacts(name="Acme deal", price=1500, pipeline_id=10, status_id=101, tags=("Hot", "vip"),
                 fields={"77": [{"value": "Referral", "enum_id": 5}], "78": ["42"]})
ENROL = {"type": "enroll_in_sequence", "sequence_id": str(uuid.uuid4())}


def trigger(on: dict[str, Any], *, conditions: list[dict[str, Any]] | None = None, limit: int | None = None,
            enabled: bool = True) -> TriggerDefinition:
    return TriggerDefinition.model_validate({"id": uuid.uuid4(), "agent_id": uuid.uuid4(), "on": on,
                                             "conditions": conditions or [], "actions": [ENROL],
                                             "per_lead_limit": limit, "enabled": enabled})


def event(kind: TriggerEventType, **fields: Any) -> TriggerEvent:
    return TriggerEvent(type=kind, lead=LEAD, **fields)


def test_status_changed_matches_target_pipeline_and_origin() -> None:
    to_won = trigger({"type": "status_changed", "status_id": 142})
    in_pipeline = trigger({"type": "status_changed", "pipeline_id": 10, "from_status_id": 100})
    anything = trigger({"type": "status_changed"})
    fired = match_triggers(event(TriggerEventType.status_changed, status_id=101, pipeline_id=10, old_status_id=100),
                           [to_won, in_pipeline, anything])
    assert [m.trigger_id for m in fired] == [in_pipeline.id, anything.id]


def test_each_event_type_has_its_own_filters() -> None:
    added = trigger({"type": "lead_added", "pipeline_id": 10})
    message = trigger({"type": "incoming_message", "contains": "PRICE"})
    tag = trigger({"type": "tag_added", "tag": " VIP "})
    silent = trigger({"type": "no_reply_for_hours", "hours": 48})
    daily = trigger({"type": "schedule", "every": "daily"})
    everything = [added, message, tag, silent, daily]

    def fired(e: TriggerEvent) -> list[uuid.UUID]:
        return [m.trigger_id for m in match_triggers(e, everything)]

    assert fired(event(TriggerEventType.lead_added, pipeline_id=10)) == [added.id]
    assert fired(event(TriggerEventType.lead_added, pipeline_id=11)) == []
    assert fired(event(TriggerEventType.incoming_message, text="what is the price?")) == [message.id]
    assert fired(event(TriggerEventType.incoming_message, text="hello")) == []
    assert fired(event(TriggerEventType.tag_added, tag="vip")) == [tag.id]
    assert fired(event(TriggerEventType.no_reply_for_hours, hours_without_reply=50)) == [silent.id]
    assert fired(event(TriggerEventType.no_reply_for_hours, hours_without_reply=47.9)) == []
    assert fired(event(TriggerEventType.schedule, every="daily")) == [daily.id]


def test_conditions_limits_and_disabled_triggers() -> None:
    hot = trigger({"type": "lead_added"}, conditions=[{"kind": "tag", "tag": "hot"}])
    cold = trigger({"type": "lead_added"}, conditions=[{"kind": "tag", "tag": "cold"}])
    limited = trigger({"type": "lead_added"}, limit=2)
    off = trigger({"type": "lead_added"}, enabled=False)
    e = event(TriggerEventType.lead_added)
    assert [m.trigger_id for m in match_triggers(e, [hot, cold, limited, off], {limited.id: 1})] == [hot.id, limited.id]
    assert [m.trigger_id for m in match_triggers(e, [limited], {limited.id: 2})] == []


@pytest.mark.parametrize(("condition", "expected"), [
    ({"kind": "field", "field": "price", "op": "gt", "value": 1000}, True),
    ({"kind": "field", "field": "price", "op": "lte", "value": "1000"}, False),
    ({"kind": "field", "field": "77", "op": "eq", "value": "referral"}, True),
    ({"kind": "field", "field": "78", "op": "eq", "value": 42}, True),
    ({"kind": "field", "field": "79", "op": "exists"}, False),
    ({"kind": "field", "field": "79", "op": "neq", "value": "x"}, True),
    ({"kind": "field", "field": "name", "op": "contains", "value": "ACME"}, True),
    ({"kind": "field", "field": "status_id", "op": "in", "value": [100, 101]}, True),
    ({"kind": "stage", "status_ids": [101], "pipeline_id": 11}, False),
    ({"kind": "any", "conditions": [{"kind": "replied"}, {"kind": "tag", "tag": "VIP"}]}, True),
    ({"kind": "not", "condition": {"kind": "tag", "tag": "hot", "present": False}}, True),
    ({"kind": "all", "conditions": []}, True),
])
def test_conditions(condition: dict[str, Any], expected: bool) -> None:
    assert evaluate(CONDITION.validate_python(condition), LEAD) is expected


def test_malformed_conditions_are_rejected() -> None:
    nested: dict[str, Any] = {"kind": "tag", "tag": "x"}
    for _ in range(6):
        nested = {"kind": "not", "condition": nested}
    for bad in [nested, {"kind": "field", "field": "price", "op": "gt", "value": "lots"},
                {"kind": "field", "field": "price", "op": "in", "value": 3}, {"kind": "weather"}]:
        with pytest.raises(ValidationError):
            CONDITION.validate_python(bad)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(TriggerEventType)), st.lists(st.sampled_from(list(TriggerEventType)), max_size=6))
def test_only_triggers_of_the_events_type_ever_fire(kind: TriggerEventType, kinds: list[TriggerEventType]) -> None:
    defaults = {"tag_added": {"tag": "x"}, "no_reply_for_hours": {"hours": 1}}
    triggers = [trigger({"type": k.value, **defaults.get(k.value, {})}) for k in kinds]
    fired = {m.trigger_id for m in match_triggers(event(kind, tag="x", hours_without_reply=5, every="daily"), triggers)}
    assert fired == {t.id for t in triggers if t.on.type == kind.value}
