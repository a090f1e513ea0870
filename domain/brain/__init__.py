"""The agent's brain, pure part: what to answer, from configured content only (no I/O, deterministic).

``analyse`` reads a lead's message(s) against the agent's playbook (objections, scripts, rules, fields) and the
retrieved knowledge passages; ``compose_reply`` turns that analysis into the offline playbook's reply;
``build_prompt`` turns the same analysis into chat-completions messages for an LLM provider, whose answer
``enforce_guardrails`` checks before it may be sent. Activities do the I/O around it (retrieval, config, Kommo).
"""

from domain.brain.compose import analyse, compose_follow_up, compose_reply
from domain.brain.fields import ExtractedField, extract_fields
from domain.brain.guardrails import GuardrailResult, enforce_guardrails, forbidden_topics_in
from domain.brain.intent import wants_human
from domain.brain.objections import match_objection
from domain.brain.playbook import (
    Action,
    Analysis,
    BrainRequest,
    Field,
    FollowUpRequest,
    Objection,
    Passage,
    Playbook,
    Reply,
    Rule,
    Script,
    Turn,
)
from domain.brain.prompt import build_prompt
from domain.brain.summary import summarize, transcript_line

__all__ = [
    "Action",
    "Analysis",
    "BrainRequest",
    "ExtractedField",
    "Field",
    "FollowUpRequest",
    "GuardrailResult",
    "Objection",
    "Passage",
    "Playbook",
    "Reply",
    "Rule",
    "Script",
    "Turn",
    "analyse",
    "build_prompt",
    "compose_follow_up",
    "compose_reply",
    "enforce_guardrails",
    "extract_fields",
    "forbidden_topics_in",
    "match_objection",
    "summarize",
    "transcript_line",
    "wants_human",
]
