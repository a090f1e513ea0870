"""Kommo CRM webhooks: parse and build the form-encoded bodies. Pure, no I/O.

Kommo posts ``application/x-www-form-urlencoded`` bodies with PHP-style bracket keys such as
``leads[status][0][status_id]=142`` and ``account[subdomain]=acme``. They are unsigned (we verify a
secret token in the URL instead), retried at +5 min, +15 min, +15 min, +1 h, and switched off after
100 failures in 2 h -- so the receiver must dedupe (``CrmEvent.event_key``) and answer fast.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CrmEvent",
    "CrmWebhook",
    "WebhookAccount",
    "WebhookParseError",
    "encode_crm_webhook",
    "encode_crm_webhook_pairs",
    "parse_crm_webhook",
    "parse_form_to_nested",
]

EntityName = Literal["lead", "contact", "note", "message", "talk"]
ActionName = Literal["add", "update", "status", "delete", "responsible"]

# Bounds against hostile bodies; a real Kommo webhook is a few dozen pairs, depth <= 6.
MAX_PAIRS = 5000
MAX_DEPTH = 8
MAX_KEY_LENGTH = 256

# Top-level form key -> entity. Kommo pluralises CRM entities but not chat ones.
_TOP_LEVEL: dict[str, EntityName] = {
    "leads": "lead",
    "contacts": "contact",
    "notes": "note",
    "message": "message",
    "talk": "talk",
}
_TOP_LEVEL_BY_ENTITY: dict[EntityName, str] = {v: k for k, v in _TOP_LEVEL.items()}
_ACTIONS: dict[str, ActionName] = {
    "add": "add",
    "update": "update",
    "status": "status",
    "delete": "delete",
    "responsible": "responsible",
}

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")


class WebhookParseError(ValueError):
    """The webhook body is malformed or lacks what every Kommo webhook carries."""


def _split_key(key: str) -> list[str]:
    if len(key) > MAX_KEY_LENGTH:
        raise WebhookParseError(f"malformed key {key[:40]!r}...: longer than {MAX_KEY_LENGTH}")
    match = _KEY_RE.match(key)
    if match is None:
        raise WebhookParseError(f"malformed key {key!r}")
    segments = [match.group(1), *_SEGMENT_RE.findall(match.group(2))]
    if any(s == "" for s in segments[1:]):
        # PHP's "append" form ``a[]`` is never sent by Kommo; accepting it would make the
        # resulting list order depend on pair order, so we reject it.
        raise WebhookParseError(f"malformed key {key!r}: empty brackets")
    if len(segments) > MAX_DEPTH:
        raise WebhookParseError(f"malformed key {key!r}: nested deeper than {MAX_DEPTH}")
    return segments


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all non-negative integers into lists ordered by index."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def parse_form_to_nested(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn bracket-keyed form pairs into nested dicts; all-numeric key levels become lists.

    ``[("a[b][0][c]", "1")]`` -> ``{"a": {"b": [{"c": "1"}]}}``. A repeated key keeps the last
    value (as PHP does). A key that is both a value and a container raises ``WebhookParseError``.
    """
    root: dict[str, Any] = {}
    for count, (key, value) in enumerate(pairs, start=1):
        if count > MAX_PAIRS:
            raise WebhookParseError(f"too many form fields (> {MAX_PAIRS})")
        segments = _split_key(key)
        node = root
        for segment in segments[:-1]:
            child = node.setdefault(segment, {})
            if not isinstance(child, dict):
                raise WebhookParseError(f"malformed key {key!r}: {segment!r} is both a value and a container")
            node = child
        last = segments[-1]
        if isinstance(node.get(last), dict):
            raise WebhookParseError(f"malformed key {key!r}: {last!r} is both a value and a container")
        node[last] = value
    # The root stays a dict even if every name is numeric: callers index it by name.
    return {name: _listify(value) for name, value in root.items()}


class WebhookAccount(BaseModel):
    """The account a webhook came from."""

    model_config = ConfigDict(frozen=True)

    id: int
    subdomain: str


class CrmEvent(BaseModel):
    """One typed event of a CRM webhook.

    ``entity_id`` is an int for CRM entities and talks, and a string for chat messages (Kommo
    message ids are UUIDs). ``lead_id`` is the lead the event concerns, when known: the lead
    itself, or the lead a message/talk/note is attached to.
    """

    model_config = ConfigDict(frozen=True)

    account_id: int
    entity: EntityName
    action: ActionName
    entity_id: int | str
    lead_id: int | None = None
    contact_id: int | None = None
    status_id: int | None = None
    pipeline_id: int | None = None
    old_status_id: int | None = None
    old_pipeline_id: int | None = None
    responsible_user_id: int | None = None
    old_responsible_user_id: int | None = None
    text: str | None = None
    chat_id: str | None = None
    talk_id: int | None = None
    author_type: str | None = None
    author_id: str | None = None
    author_name: str | None = None
    # Chat messages: ``incoming`` (the client wrote) or ``outgoing`` (a user, bot or integration did).
    message_type: str | None = None
    last_modified: int | None = None
    raw: dict[str, Any]

    @property
    def event_key(self) -> str:
        """Stable dedup key: identical for a redelivery, different for a new change.

        Built from account, entity, action, id and the fields that change with each occurrence
        (status/pipeline, responsible user, modification time). Without a modification time the
        key falls back to a hash of the raw item, which is also identical on redelivery.
        """
        parts = [str(self.account_id), self.entity, self.action, str(self.entity_id)]
        if self.action == "status":
            parts += [f"p{self.pipeline_id}", f"s{self.status_id}"]
        elif self.action == "responsible":
            parts.append(f"u{self.responsible_user_id}")
        # ``add``/``delete`` happen once per id (and message ids are unique), so the id suffices;
        # every other action needs the "when" to tell two changes of one entity apart.
        if self.action not in ("add", "delete"):
            if self.last_modified is not None:
                parts.append(f"t{self.last_modified}")
            else:
                digest = hashlib.sha256(json.dumps(self.raw, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
                parts.append(f"h{digest[:16]}")
        return ":".join(parts)


class CrmWebhook(BaseModel):
    """A parsed CRM webhook: the account and its events, in body order."""

    model_config = ConfigDict(frozen=True)

    account: WebhookAccount
    events: list[CrmEvent]


def _int(item: Mapping[str, Any], name: str, where: str) -> int | None:
    value = item.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise WebhookParseError(f"{where}[{name}] must be a scalar")
    try:
        return int(value)
    except ValueError:
        raise WebhookParseError(f"{where}[{name}] is not an integer: {value!r}") from None


def _str(item: Mapping[str, Any], name: str, where: str) -> str | None:
    value = item.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise WebhookParseError(f"{where}[{name}] must be a scalar")
    return value


def _sub(item: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    value = item.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebhookParseError(f"{where}[{name}] must be a group of fields")
    return value


def _first_int(item: Mapping[str, Any], names: Sequence[str], where: str) -> int | None:
    for name in names:
        value = _int(item, name, where)
        if value is not None:
            return value
    return None


def _event(
    account_id: int,
    entity: EntityName,
    action: ActionName,
    item: dict[str, Any],
    where: str,
    parent: EntityName,
) -> CrmEvent:
    fields = item
    if entity == "note" and isinstance(item.get("note"), dict):
        # Older note hooks wrap the note in ``[note]``; flatten so both shapes read alike.
        fields = {**item, **item["note"]}
    author = _sub(fields, "author", where)

    entity_id: int | str
    if entity == "message":
        message_id = _str(fields, "id", where)
        if message_id is None:
            raise WebhookParseError(f"{where}[id] is required")
        entity_id = message_id
    else:
        id_field = "talk_id" if entity == "talk" else "id"
        numeric_id = _first_int(fields, (id_field, "id"), where)
        if numeric_id is None:
            raise WebhookParseError(f"{where}[{id_field}] is required")
        entity_id = numeric_id

    lead_id: int | None
    if entity == "lead":
        lead_id = int(entity_id)
    elif entity in ("message", "talk", "note"):
        # element_type 2 / entity_type "lead(s)" mark a lead; contacts use 1 / "contact".
        element_type = _str(fields, "element_type", where) or _str(fields, "entity_type", where)
        linked = _first_int(fields, ("element_id", "entity_id", "lead_id"), where)
        if element_type is None:
            # No type given: trust the grouping (``contacts[note]`` is about a contact).
            lead_id = linked if parent != "contact" else None
        else:
            lead_id = linked if element_type in ("2", "lead", "leads") else None
    else:
        lead_id = None

    contact_id = int(entity_id) if entity == "contact" else _int(fields, "contact_id", where)
    talk_id = _int(fields, "talk_id", where)
    return CrmEvent(
        account_id=account_id,
        entity=entity,
        action=action,
        entity_id=entity_id,
        lead_id=lead_id,
        contact_id=contact_id,
        status_id=_int(fields, "status_id", where),
        pipeline_id=_int(fields, "pipeline_id", where),
        old_status_id=_int(fields, "old_status_id", where),
        old_pipeline_id=_int(fields, "old_pipeline_id", where),
        responsible_user_id=_int(fields, "responsible_user_id", where),
        old_responsible_user_id=_int(fields, "old_responsible_user_id", where),
        text=_str(fields, "text", where),
        chat_id=_str(fields, "chat_id", where),
        talk_id=talk_id,
        author_type=_str(author, "type", where + "[author]"),
        author_id=_str(author, "id", where + "[author]"),
        author_name=_str(author, "name", where + "[author]"),
        message_type=_str(fields, "type", where) if entity == "message" else None,
        last_modified=_first_int(fields, ("last_modified", "updated_at", "created_at"), where),
        raw=item,
    )


def parse_crm_webhook(pairs: Iterable[tuple[str, str]]) -> CrmWebhook:
    """Parse a Kommo CRM webhook body (form pairs) into typed events.

    Unknown entities (companies, customers, unsorted...) and actions are skipped so a Kommo
    addition does not break intake; a body with no account or no known event raises
    ``WebhookParseError`` (callers may still answer 2xx to stop Kommo from retrying it).
    """
    nested = parse_form_to_nested(pairs)
    account_raw = nested.get("account")
    if not isinstance(account_raw, dict):
        raise WebhookParseError("missing account[id] / account[subdomain]")
    account_id = _int(account_raw, "id", "account")
    subdomain = _str(account_raw, "subdomain", "account")
    if account_id is None or subdomain is None:
        raise WebhookParseError("missing account[id] / account[subdomain]")

    events: list[CrmEvent] = []
    for top, actions in nested.items():
        entity = _TOP_LEVEL.get(top)
        if entity is None:
            continue
        if not isinstance(actions, dict):
            raise WebhookParseError(f"{top} must be grouped by action, e.g. {top}[add][0][id]")
        for action_name, items in actions.items():
            action = _ACTIONS.get(action_name)
            item_entity: EntityName = entity
            if action_name == "note" and entity in ("lead", "contact"):
                # ``leads[note][0][note][...]``: a note added to a lead/contact.
                item_entity, action = "note", "add"
            if action is None:
                continue
            if not isinstance(items, list):
                raise WebhookParseError(f"{top}[{action_name}] must be a list indexed from 0")
            for index, item in enumerate(items):
                where = f"{top}[{action_name}][{index}]"
                if not isinstance(item, dict):
                    raise WebhookParseError(f"{where} must be a group of fields")
                events.append(_event(account_id, item_entity, action, item, where, parent=entity))
    if not events:
        raise WebhookParseError("webhook carries no known event")
    return CrmWebhook(account=WebhookAccount(id=account_id, subdomain=subdomain), events=events)


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}[{key}]", sub, out)
    elif isinstance(value, list | tuple):
        for index, sub in enumerate(value):
            _flatten(f"{prefix}[{index}]", sub, out)
    elif isinstance(value, bool):
        out.append((prefix, "1" if value else "0"))
    else:
        out.append((prefix, str(value)))


def encode_crm_webhook_pairs(
    account_id: int, subdomain: str, events: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """Form pairs of a CRM webhook; see ``encode_crm_webhook``."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in events:
        entity = event.get("entity")
        action = event.get("action")
        if entity not in _TOP_LEVEL_BY_ENTITY or not isinstance(action, str):
            raise ValueError(f"event needs a known 'entity' and an 'action': {dict(event)!r}")
        fields = {k: v for k, v in event.items() if k not in ("entity", "action")}
        grouped.setdefault((_TOP_LEVEL_BY_ENTITY[entity], action), []).append(fields)
    pairs: list[tuple[str, str]] = []
    for (top, action), items in grouped.items():
        _flatten(f"{top}[{action}]", items, pairs)
    pairs += [
        ("account[subdomain]", subdomain),
        ("account[id]", str(account_id)),
        ("account[_links][self]", f"https://{subdomain}.kommo.com"),
    ]
    return pairs


def encode_crm_webhook(account_id: int, subdomain: str, events: Sequence[Mapping[str, Any]]) -> str:
    """Build a form-encoded CRM webhook body, the inverse of ``parse_crm_webhook``.

    Each event is a dict with ``entity`` (lead|contact|note|message|talk), ``action`` and the
    item's fields, nested dicts allowed: ``{"entity": "lead", "action": "status", "id": 1,
    "status_id": 142, "pipeline_id": 5}`` -> ``leads[status][0][id]=1&...``.
    """
    return urlencode(encode_crm_webhook_pairs(account_id, subdomain, events))
