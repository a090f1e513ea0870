"""Chat-completions messages for an LLM provider, built from the same analysis as the offline reply."""

from __future__ import annotations

from domain.brain.compose import script_line
from domain.brain.knowledge import quote
from domain.brain.playbook import Analysis, BrainRequest

MAX_HISTORY = 12
MAX_PASSAGES = 3


def build_prompt(request: BrainRequest, analysis: Analysis) -> list[dict[str, str]]:
    """System prompt (persona, rules, stage, objection, context, fields) + recent history + the new message."""
    playbook = request.playbook
    lines = [
        f"You are {playbook.agent_name}, a sales assistant. Tone: {playbook.tone}. Reply in language: "
        f"{playbook.language}.",
    ]
    if playbook.persona:
        lines.append(f"Persona: {playbook.persona}")
    lines.append(
        "Answer ONLY with facts from CONTEXT and the approved answers below. If the answer is not there, say a "
        "colleague will confirm it. Never invent prices, dates, discounts or promises. Keep it short."
    )
    if playbook.rules:
        lines.append("RULES (must be followed):")
        lines += [f"- [{rule.kind}] {rule.instruction}" for rule in playbook.rules]
    lines.append(f"STAGE: {analysis.stage}")
    line = script_line(playbook, analysis.stage, request.turn)
    if line:
        lines.append(f"SCRIPT LINE for this stage: {line}")
    if analysis.forbidden_response:
        lines.append(f"The lead touched a forbidden topic; answer with: {analysis.forbidden_response}")
    if analysis.objection is not None:
        lines.append(f"OBJECTION raised: {analysis.objection.objection}. Approved answer: {analysis.objection.answer}")
    passages = [analysis.passage] if analysis.passage else []
    passages += [p for p in request.passages if p is not analysis.passage][: MAX_PASSAGES - len(passages)]
    if passages and not analysis.forbidden_topics:
        lines.append("CONTEXT:")
        lines += [f"- {p.title}: {quote(analysis.text, p)}" for p in passages]
    else:
        lines.append("CONTEXT: (nothing relevant found)")
    if analysis.fields:
        lines.append("KNOWN FIELDS: " + ", ".join(f"{k}={v}" for k, v in sorted(analysis.fields.items())))
    if analysis.missing:
        lines.append("ASK NEXT FOR: " + analysis.missing[0].label)
    if request.summary:
        lines.append(f"EARLIER CONVERSATION SUMMARY: {request.summary}")
    messages = [{"role": "system", "content": "\n".join(lines)}]
    for turn in request.history[-MAX_HISTORY:]:
        if turn.author in ("lead", "agent", "manager"):
            messages.append({"role": "user" if turn.author == "lead" else "assistant", "content": turn.text})
    messages.append({"role": "user", "content": analysis.text})
    return messages
