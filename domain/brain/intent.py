"""Does the lead ask for a human? English, Russian, Spanish and Portuguese, accent-insensitive.

A bare noun is not enough ("I am a manager at ACME" is no request): a request verb must come before a person
noun within a few words, or the phrase must be unambiguous ("real person", "живой человек").
"""

# Multilingual on purpose (en/ru/es/pt): Cyrillic letters and typographic quotes are intended.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import re

from domain.brain.text import fold

_GAP = r"(?:\W+\w+){0,4}?\W+"

_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        # English
        r"\b(?:talk|speak|chat)\w*" + _GAP
        + r"(?:human|person|agent|manager|operator|someone|somebody|representative|rep|salesperson)\b",
        r"\b(?:connect|transfer|put|pass)\w*\s+me" + _GAP
        + r"(?:human|person|agent|manager|operator|someone|representative)\b",
        r"\b(?:real|live|actual)\s+(?:human|person|agent|operator)\b",
        r"\b(?:are you|is this) (?:a )?(?:bot|robot)\b.*\b(?:human|person)\b",
        r"\bhuman (?:please|agent|operator)\b",
        r"\b(?:i want|i need|give me|get me) (?:a |an )?(?:human|manager|operator|real person)\b",
        # Russian (folded: й -> и, ё -> е)
        r"\b(?:позов\w*|соедин\w*|переключ\w*|перевед\w*|дайте|хочу|нужен|нужно|можно)" + _GAP
        + r"(?:человек\w*|оператор\w*|менеджер\w*|специалист\w*|консультант\w*|живо\w*)",
        r"\bживо\w* (?:человек\w*|оператор\w*|менеджер\w*)",
        r"\b(?:поговорить|связаться|общаться) с (?:человеком|оператором|менеджером|живым)",
        # Spanish
        r"\b(?:hablar|comunicar\w*|pasar\w*|conectar\w*|transferir\w*|comuniqu\w*)" + _GAP
        + r"(?:humano|persona|agente|asesor|operador|representante|gerente|vendedor)\b",
        r"\bpersona real\b",
        r"\b(?:quiero|necesito) (?:un |una )?(?:humano|persona|agente|asesor|operador)\b",
        # Portuguese
        r"\b(?:falar|conversar|passar|transferir|chamar|conectar)\w*" + _GAP
        + r"(?:humano|pessoa|atendente|agente|vendedor|gerente|operador|consultor)\b",
        r"\bpessoa (?:real|de verdade)\b",
        r"\b(?:quero|preciso de) (?:um |uma )?(?:humano|atendente|pessoa|consultor)\b",
    )
)


def wants_human(text: str) -> bool:
    """True when the message asks to talk to a person rather than the bot."""
    folded = fold(text)
    return any(p.search(folded) for p in _PATTERNS)
