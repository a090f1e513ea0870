"""Does a lead's message ask us to stop writing to it? Pure; English, Russian, Spanish and Portuguese.

Deliberately conservative in one direction only: a message that is just a stop word ("STOP", "стоп") or
contains an unambiguous unsubscribe phrase counts. Missing an unusual wording means one more message to a lead
who can ask again; treating "stop by tomorrow?" as an opt-out would silence a lead who wanted to buy.
"""

from __future__ import annotations

import re

from domain.brain.text import fold

__all__ = ["opt_out_phrase"]

# The whole message, after folding and trimming punctuation.
_STOP_WORDS = frozenset({"stop", "unsubscribe", "optout", "opt out", "стоп", "отписаться", "отписка", "baja",
                         "parar", "descadastrar"})
# Anywhere in the message (folded: accents stripped, lower case, single spaces).
_PHRASES = (
    # en
    "unsubscribe", "opt out", "opt-out", "stop messaging", "stop texting", "stop writing", "stop sending",
    "stop contacting", "do not contact me", "don't contact me", "dont contact me", "do not message me",
    "don't message me", "do not write to me", "don't write to me", "remove me from your list",
    "remove me from the list",
    # ru (folded, so the letter yo matches ye)
    "отпишите", "отписаться", "не пишите мне", "больше не пишите", "перестаньте писать", "перестаньте мне писать",
    "не беспокойте", "удалите мой номер",
    # es
    "darme de baja", "dar de baja", "no me escriban", "no me escribas", "dejen de escribir", "deja de escribir",
    "dejen de enviar", "no quiero recibir", "no me contacten",
    # pt
    "descadastrar", "descadastre", "nao me enviem", "parem de me enviar", "pare de me enviar", "nao quero receber",
    "nao me contatem", "parem de escrever", "pare de escrever",
)
_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = " \t\n.!?,;:¡¿\"'()[]"


def opt_out_phrase(text: str) -> str | None:
    """The stop word or phrase that makes ``text`` an opt-out, or None when it is not one."""
    folded = _SPACES.sub(" ", fold(text)).replace("\u2019", "'")
    whole = folded.strip(_EDGE_PUNCTUATION)
    if whole in _STOP_WORDS:
        return whole
    return next((phrase for phrase in _PHRASES if phrase in folded), None)
