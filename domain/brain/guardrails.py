"""The agent's rules as hard guardrails, applied to every reply whichever provider wrote it.

Machine-checked kinds and their parameters (quoted text in the instruction stands in for missing ones):

- ``forbid_topic``: ``topics``/``keywords`` (list) and optional ``response``. A lead asking about one gets the
  response (or a polite refusal); a reply mentioning one loses those sentences.
- ``max_length``: ``max_chars``. Longer replies are cut at a sentence boundary.
- ``require_phrase``: ``phrase`` and ``position`` (start|end, default end). Added when missing.
- ``handoff_when``: ``keywords``, ``on_qualified`` (bool), ``after_turns`` (int), ``reason``.
- ``custom``: free text, only for the LLM prompt.
"""

# Multilingual on purpose (en/ru/es/pt): Cyrillic letters and typographic quotes are intended.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from domain.brain.playbook import Rule
from domain.brain.text import contains_phrase, sentences, truncate_sentences

_QUOTED = re.compile(r"[\"“«‘']([^\"”»’']{2,200})[\"”»’']")


@dataclass(frozen=True)
class GuardrailResult:
    """The reply after the rules, what was changed, and whether nothing sendable was left."""

    text: str
    violations: tuple[str, ...]
    blocked: bool


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float) and str(v).strip()]
    return []


def rule_phrases(rule: Rule, *keys: str) -> list[str]:
    """Phrases a rule names in its parameters, else the quoted phrases of its instruction."""
    found: list[str] = []
    for key in keys:
        found += _strings(rule.parameters.get(key))
    return found or _QUOTED.findall(rule.instruction)


def forbidden_topics_in(text: str, rules: tuple[Rule, ...] | list[Rule]) -> list[tuple[str, Rule]]:
    """The forbidden topics (and their rule) that ``text`` touches."""
    hits: list[tuple[str, Rule]] = []
    for rule in rules:
        if rule.kind != "forbid_topic":
            continue
        for topic in rule_phrases(rule, "topics", "keywords", "phrases"):
            if contains_phrase(text, topic):
                hits.append((topic, rule))
    return hits


def _required(rules: tuple[Rule, ...] | list[Rule]) -> list[tuple[str, str]]:
    out = []
    for rule in rules:
        if rule.kind == "require_phrase":
            position = str(rule.parameters.get("position", "end"))
            out += [(phrase, position) for phrase in rule_phrases(rule, "phrase", "phrases")]
    return out


def max_chars(rules: tuple[Rule, ...] | list[Rule]) -> int | None:
    """The tightest max_length of the rules."""
    limits = [
        int(r.parameters["max_chars"])
        for r in rules
        if r.kind == "max_length" and isinstance(r.parameters.get("max_chars"), int)
    ]
    return min(limits) if limits else None


def enforce_guardrails(reply: str, rules: tuple[Rule, ...] | list[Rule]) -> GuardrailResult:
    """Apply every machine-checkable rule to ``reply``."""
    violations: list[str] = []
    kept = []
    for sentence in sentences(reply):
        topics = forbidden_topics_in(sentence, rules)
        if topics:
            violations += [f"forbid_topic:{topic}" for topic, _ in topics]
        else:
            kept.append(sentence)
    text = " ".join(kept)
    blocked = not text.strip()
    required = [(p, pos) for p, pos in _required(rules) if p not in text]
    limit = max_chars(rules)
    if limit is not None:
        room = limit - sum(len(p) + 1 for p, _ in required)
        if len(text) > room:
            violations.append("max_length")
            text = truncate_sentences(text, max(1, room))
    for phrase, position in required:
        violations.append("require_phrase")
        text = f"{phrase} {text}".strip() if position == "start" else f"{text} {phrase}".strip()
    return GuardrailResult(text=text, violations=tuple(violations), blocked=blocked)


def handoff_rule(
    text: str, rules: tuple[Rule, ...] | list[Rule], *, qualified: bool, turn: int
) -> str | None:
    """The reason a ``handoff_when`` rule gives for handing this lead to a person now, if any."""
    for rule in rules:
        if rule.kind != "handoff_when":
            continue
        reason = str(rule.parameters.get("reason") or rule.instruction)[:200]
        if any(contains_phrase(text, k) for k in rule_phrases(rule, "keywords", "phrases")):
            return reason
        if rule.parameters.get("on_qualified") is True and qualified:
            return reason
        after = rule.parameters.get("after_turns")
        if isinstance(after, int) and after > 0 and turn + 1 >= after:
            return reason
    return None
