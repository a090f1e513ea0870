"""Text helpers shared by the brain: accent-insensitive normalisation, words, sentences."""

# Multilingual on purpose (en/ru/es/pt): Cyrillic letters and typographic quotes are intended.
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")

# Words that carry no topic, in the four languages the brain speaks; used to score overlap only.
STOP_WORDS = frozenset(
    """
    a an and are as at be but by can could do does for from have how i if in is it its me my of on or our
    please so that the their there this to us was we what when where which who why will with would you your
    hi hello hey thanks thank ok okay yes no not any some much many about tell know want need get
    и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было
    вот от меня еще нет о из ему теперь когда даже ну ли если уже или ни быть был него до вас нибудь
    есть мы вам сколько какой какая какие это здравствуйте привет спасибо пожалуйста можно
    el la los las de del y en que un una unos por con para es son se lo al como mas pero sus le ya o
    hola gracias favor cuanto cuanta cual quiero tengo hay esta este esto estos
    o os as de do da dos das e em um uma uns umas para com por que se na no nas nos ao mais mas
    ola obrigado obrigada quanto qual quero tenho tem esta este isso
    """.split()  # noqa: SIM905
)


def fold(text: str) -> str:
    """Lower-case and strip accents, so "Garantía" matches "garantia" and "ё" matches "е"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """Folded words of ``text``."""
    return _WORD.findall(fold(text))


def stem(word: str) -> str:
    """A crude language-agnostic stem (first six letters): enough to match plural/singular forms."""
    return word[:6] if len(word) > 6 else word


def content_stems(text: str) -> set[str]:
    """Stems of the topic-bearing words of ``text``."""
    return {stem(w) for w in words(text) if w not in STOP_WORDS and (len(w) > 2 or w.isdigit())}


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether the folded phrase occurs in the folded text on word boundaries."""
    needle = " ".join(words(phrase))
    if not needle:
        return False
    haystack = " " + " ".join(words(text)) + " "
    return f" {needle} " in haystack


def sentences(text: str) -> list[str]:
    """Split into sentences, keeping their punctuation."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def truncate_sentences(text: str, max_chars: int) -> str:
    """At most ``max_chars``: whole sentences while they fit, else a cut at a word boundary with an ellipsis."""
    if len(text) <= max_chars:
        return text
    kept = ""
    for sentence in sentences(text):
        candidate = f"{kept} {sentence}".strip()
        if len(candidate) > max_chars:
            break
        kept = candidate
    if kept:
        return kept
    cut = text[: max(1, max_chars - 1)].rsplit(" ", 1)[0].rstrip(",;:- ")
    return (cut or text[: max_chars - 1]) + "…"
