"""The offline playbook provider: analyse the lead's message, then answer from configured content only."""

from __future__ import annotations

import re
from typing import Any

from domain.brain.fields import extract_fields
from domain.brain.guardrails import enforce_guardrails, forbidden_topics_in, handoff_rule, rule_phrases
from domain.brain.intent import wants_human
from domain.brain.knowledge import quote, select_passage
from domain.brain.objections import match_objection
from domain.brain.phrases import phrase
from domain.brain.playbook import (
    Action,
    Analysis,
    BrainRequest,
    Field,
    FollowUpRequest,
    Playbook,
    Reply,
    Script,
)
from domain.brain.text import fold

_QUESTION_WORDS = re.compile(
    r"^(?:how|what|when|where|which|who|why|do|does|is|are|can|could|will|would|сколько|как|что|когда|где|какой|"
    r"какая|какие|есть|можно|cuanto|cuanta|como|que|cuando|donde|cual|quanto|quanta|quando|onde|qual|tem)\b"
)


def _is_question(text: str) -> bool:
    return "?" in text or any(_QUESTION_WORDS.match(fold(line.strip())) for line in text.splitlines())


def _script(playbook: Playbook, stage: str) -> Script | None:
    return next((s for s in sorted(playbook.scripts, key=lambda s: s.position) if s.stage == stage and s.messages),
                None)


def script_line(playbook: Playbook, stage: str, index: int) -> str | None:
    """The ``index``-th line (cycling) of the first script of ``stage``, if the agent has one."""
    script = _script(playbook, stage)
    if script is None:
        return None
    return script.messages[index % len(script.messages)]


def select_stage(*, first_turn: bool, objection: bool, qualified: bool, has_required: bool,
                 playbook: Playbook) -> str:
    """Where the conversation is: greeting, objection handling, qualification, presentation or closing."""
    if first_turn:
        return "greeting"
    if objection:
        return "objection_handling"
    if has_required and not qualified:
        return "qualification"
    if qualified and has_required:
        return "closing"
    return "presentation" if _script(playbook, "presentation") else "qualification"


def _missing(fields: tuple[Field, ...], values: dict[str, Any]) -> tuple[Field, ...]:
    return tuple(f for f in fields if f.required and values.get(f.key) in (None, ""))


def analyse(request: BrainRequest) -> Analysis:
    """Everything the reply depends on, computed once for either provider."""
    playbook = request.playbook
    text = request.text
    extracted: dict[str, Any] = {}
    invalid: dict[str, str] = {}
    for item in extract_fields(text, playbook.fields):
        if item.error is None:
            extracted[item.key] = item.value
        else:
            invalid[item.key] = item.error
    values = {**request.known_fields, **extracted}
    missing = _missing(playbook.fields, values)
    has_required = any(f.required for f in playbook.fields)
    qualified = has_required and not missing
    newly_qualified = qualified and bool(_missing(playbook.fields, request.known_fields))

    human = wants_human(text)
    handoff_reason = "lead_requested_human" if human else None
    if handoff_reason is None:
        rule_reason = handoff_rule(text, playbook.rules, qualified=newly_qualified, turn=request.turn)
        if rule_reason is not None:
            handoff_reason = f"rule: {rule_reason}"

    hits = forbidden_topics_in(text, playbook.rules)
    forbidden_response = None
    if hits:
        responses = [str(r.parameters.get("response")) for _, r in hits if r.parameters.get("response")]
        forbidden_response = responses[0] if responses else phrase(playbook.language, "forbidden")

    objection = match_objection(text, playbook.objections)
    passage = select_passage(text, request.passages, playbook.rules) if not hits else None
    first_turn = request.turn == 0 and not any(t.author == "agent" for t in request.history)
    stage = select_stage(first_turn=first_turn, objection=objection is not None, qualified=qualified,
                         has_required=has_required, playbook=playbook)

    actions: list[Action] = []
    if newly_qualified:
        actions += [a for a in playbook.actions if a.type == "move_stage"]
    if handoff_reason is not None:
        actions += [a for a in playbook.actions if a.type == "handoff"]
    return Analysis(
        text=text, language=playbook.language, wants_human=human, handoff_reason=handoff_reason,
        forbidden_topics=tuple(t for t, _ in hits), forbidden_response=forbidden_response,
        objection=objection.objection if objection else None, passage=passage, extracted=extracted,
        invalid=invalid, fields=values, missing=missing, qualified=qualified, stage=stage,
        first_turn=first_turn, actions=tuple(actions),
    )


def _field_label(playbook: Playbook, key: str) -> str:
    return next((f.label for f in playbook.fields if f.key == key), key)


def _question_for(playbook: Playbook, field: Field, turn: int) -> str:
    script = _script(playbook, "qualification")
    if script is not None:
        # A qualification line that names the field asks for it in the business's own words.
        label = fold(field.label)
        for line in script.messages:
            if label in fold(line) or fold(field.key.replace("_", " ")) in fold(line):
                return line
    return phrase(playbook.language, "ask_field", label=field.label.lower())


def compose_reply(request: BrainRequest, analysis: Analysis | None = None) -> Reply:
    """The offline playbook's answer: configured scripts, objection answers and retrieved knowledge only."""
    analysis = analysis or analyse(request)
    playbook = request.playbook
    lang = playbook.language
    parts: list[str] = []
    objection_id = analysis.objection.id if analysis.objection else None
    passage_ids: tuple[str, ...] = ()

    if analysis.handoff_reason is not None:
        handoff_action = next((a for a in analysis.actions if a.type == "handoff"), None)
        message = str((handoff_action.parameters.get("message") if handoff_action else None) or phrase(lang, "handoff"))
        parts.append(message)
    else:
        if analysis.first_turn:
            parts.append(script_line(playbook, "greeting", 0) or phrase(lang, "fallback_greeting"))
        if analysis.forbidden_response is not None:
            parts.append(analysis.forbidden_response)
        if analysis.objection is not None:
            parts.append(analysis.objection.answer)
        if analysis.passage is not None:
            parts.append(quote(analysis.text, analysis.passage))
            passage_ids = (analysis.passage.id,)
        elif (analysis.objection is None and analysis.forbidden_response is None and _is_question(analysis.text)):
            parts.append(phrase(lang, "unknown"))
        for key, error in analysis.invalid.items():
            parts.append(phrase(lang, "invalid_field", label=_field_label(playbook, key).lower(), error=error))
        if analysis.missing and not analysis.invalid:
            parts.append(_question_for(playbook, analysis.missing[0], request.turn))
        elif analysis.qualified and analysis.extracted:
            parts.append(script_line(playbook, "closing", request.turn) or phrase(lang, "thanks_qualified"))
        if not parts:
            parts.append(script_line(playbook, analysis.stage, request.turn) or phrase(lang, "unknown"))

    text = _dedupe(parts)
    guarded = enforce_guardrails(text, playbook.rules)
    final = guarded.text if not guarded.blocked else (analysis.forbidden_response or phrase(lang, "forbidden"))
    return Reply(
        text=final, stage=analysis.stage, fields=analysis.fields, extracted=analysis.extracted,
        invalid=analysis.invalid, handoff_reason=analysis.handoff_reason, actions=analysis.actions,
        objection_id=objection_id, passage_ids=passage_ids, violations=guarded.violations,
    )


def _dedupe(parts: list[str]) -> str:
    seen: set[str] = set()
    out = []
    for part in parts:
        key = fold(part).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(part.strip())
    return " ".join(out)


def compose_follow_up(request: FollowUpRequest) -> Reply:
    """An outbound nudge: the follow-up script (or a neutral line), then the next missing field, guarded."""
    playbook = request.playbook
    lang = playbook.language
    missing = _missing(playbook.fields, request.known_fields)
    name = f" {request.lead_name}" if request.lead_name else ""
    parts = [script_line(playbook, "follow_up", request.attempt) or phrase(lang, "follow_up", name=name)]
    if missing:
        parts.append(_question_for(playbook, missing[0], request.attempt))
    guarded = enforce_guardrails(_dedupe(parts), playbook.rules)
    stage = "follow_up"
    return Reply(
        text=guarded.text if not guarded.blocked else phrase(lang, "follow_up", name=name), stage=stage,
        fields=dict(request.known_fields), extracted={}, invalid={}, violations=guarded.violations,
    )


__all__ = ["analyse", "compose_follow_up", "compose_reply", "rule_phrases", "script_line", "select_stage"]
