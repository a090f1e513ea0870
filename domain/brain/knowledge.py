"""Choosing the knowledge passage that answers the lead, and the part of it worth quoting."""

from __future__ import annotations

from difflib import SequenceMatcher

from domain.brain.guardrails import forbidden_topics_in
from domain.brain.playbook import Passage, Rule
from domain.brain.text import content_stems, fold, sentences

MAX_QUOTE_SENTENCES = 2


def _score(question: str, passage: Passage) -> float:
    asked = content_stems(question)
    if not asked:
        return 0.0
    head = content_stems(f"{passage.title} {passage.question or ''}")
    covered = asked & (head | content_stems(passage.text))
    if not covered:
        return 0.0
    # Coverage of the question's topic words decides; a match in the title/question breaks ties.
    similarity = SequenceMatcher(None, fold(question), fold(passage.question or passage.title)).ratio()
    return len(covered) + 0.5 * len(asked & head) / len(asked) + 0.25 * similarity + 0.1 * min(passage.rank, 1.0)


def select_passage(question: str, passages: tuple[Passage, ...] | list[Passage],
                   rules: tuple[Rule, ...] | list[Rule] = ()) -> Passage | None:
    """The passage covering most topic words of the question (title/question matches break ties), if any.

    Passages touching a forbidden topic are never chosen.
    """
    best: tuple[float, int, Passage] | None = None
    for index, passage in enumerate(passages):
        if forbidden_topics_in(f"{passage.title} {passage.text}", rules):
            continue
        score = _score(question, passage)
        # Ties keep retrieval order (the database's ranking).
        if score > 0 and (best is None or score > best[0]):
            best = (score, index, passage)
    return best[2] if best else None


def quote(question: str, passage: Passage) -> str:
    """What to say from the passage: a FAQ's answer, or its sentences most related to the question."""
    if passage.question is not None:
        return passage.text.strip()
    parts = sentences(passage.text)
    if len(parts) <= MAX_QUOTE_SENTENCES:
        return " ".join(parts)
    asked = content_stems(question)
    scored = sorted(range(len(parts)), key=lambda i: (-len(asked & content_stems(parts[i])), i))
    chosen = sorted(scored[:MAX_QUOTE_SENTENCES])
    return " ".join(parts[i] for i in chosen)
