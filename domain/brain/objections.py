"""Which configured objection is the lead raising? Trigger phrases first, then fuzzy matching (difflib)."""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from domain.brain.playbook import Objection
from domain.brain.text import contains_phrase, content_stems, words

# Fuzzy threshold: high enough that "too expensiv" matches "too expensive" but "expensive delivery?" does not
# match "too expensive for us" on its own.
FUZZY_THRESHOLD = 0.82


@dataclass(frozen=True)
class ObjectionMatch:
    """The objection and how sure we are (1.0 = a trigger phrase occurred verbatim)."""

    objection: Objection
    score: float
    how: str


def _windows(tokens: list[str], size: int) -> list[str]:
    if len(tokens) <= size:
        return [" ".join(tokens)]
    return [" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)]


def _fuzzy(text_tokens: list[str], phrase: str) -> float:
    target = words(phrase)
    if not target or not text_tokens:
        return 0.0
    joined = " ".join(target)
    best = 0.0
    for size in {max(1, len(target) - 1), len(target), len(target) + 1}:
        for window in _windows(text_tokens, size):
            best = max(best, SequenceMatcher(None, window, joined, autojunk=False).ratio())
    return best


def match_objection(text: str, objections: tuple[Objection, ...] | list[Objection]) -> ObjectionMatch | None:
    """The best-matching objection, or None when nothing matches well enough."""
    tokens = words(text)
    best: ObjectionMatch | None = None
    for objection in objections:
        for phrase in objection.trigger_phrases:
            if contains_phrase(text, phrase):
                candidate = ObjectionMatch(objection, 1.0 + len(words(phrase)) / 100, "trigger")
                if best is None or candidate.score > best.score:
                    best = candidate
    if best is not None:
        return best
    for objection in objections:
        phrases = [*objection.trigger_phrases, objection.objection]
        score = max((_fuzzy(tokens, p) for p in phrases), default=0.0)
        # Fuzzy matches must also share a topic word, so two unrelated short phrases cannot collide.
        shared = content_stems(text) & set().union(*(content_stems(p) for p in phrases))
        if score >= FUZZY_THRESHOLD and shared and (best is None or score > best.score):
            best = ObjectionMatch(objection, score, "fuzzy")
    return best
