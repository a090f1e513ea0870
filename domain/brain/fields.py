"""Qualification field extraction and validation: email, phone, name, budget, and custom fields.

Only values the lead actually wrote are extracted, and each is validated against the field's configured
``validation`` (pattern, options, min/max) before it counts; invalid ones are reported, never stored.
"""

# Multilingual on purpose (en/ru/es/pt): Cyrillic letters and typographic quotes are intended.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.brain.playbook import Field
from domain.brain.text import contains_phrase, fold, words

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_EMAIL_STRICT = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"(?<![\w+])(\+?\d[\d\s\-().]{5,}\d)(?!\w)")
_PHONE_WORDS = ("phone", "tel", "call", "whatsapp", "number", "телефон", "номер", "тел", "telefono", "telefone",
                "celular", "movil", "zap")
_NUMBER = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:[ ,.\u00a0]\d{3})+|\d+(?:[.,]\d+)?)\s*"
    r"(k\b|тыс\w*|млн\w*|mil\b|thousand\b|million\b|millones\b|milhoes\b|milhões\b)?"
)
_CURRENCY = re.compile(r"[$€£₽]|\b(?:usd|eur|gbp|rub|руб\w*|dollars?|euros?|reais|real|pesos?|r\$)\b", re.I)
_BUDGET_WORDS = ("budget", "spend", "invest", "бюджет", "потратить", "presupuesto", "invertir", "orcamento",
                 "investir", "gastar")
_NAME_KEYS = frozenset({"name", "full_name", "first_name", "contact_name", "client_name"})
_NAME_LABELS = ("name", "имя", "nombre", "nome")
_NAME_INTRO = re.compile(
    r"(?i:\bmy name is|\bi am|\bi'm|\bi’m|\bthis is|\bcall me|меня зовут|мое имя|моё имя|\bme llamo|"
    r"\bmi nombre es|\bsoy|\bmeu nome e|\bmeu nome é|\bme chamo|\bsou)\s+([^\W\d_][\w'’-]*(?:\s+[^\W\d_][\w'’-]*)?)"
)
_YES = {"yes", "y", "true", "да", "si", "sim", "sure"}
_NO = {"no", "n", "false", "нет", "nao", "não"}
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_DATE_DMY = re.compile(r"\b(\d{1,2})[./](\d{1,2})[./](\d{4})\b")


@dataclass(frozen=True)
class ExtractedField:
    """A value found for a field, and why it was refused if it was."""

    key: str
    value: Any
    error: str | None = None


def _parse_number(raw: str, suffix: str | None) -> float | None:
    cleaned = raw.replace("\u00a0", " ")
    if re.fullmatch(r"\d{1,3}(?:[ ,.]\d{3})+", cleaned):
        value = float(re.sub(r"[ ,.]", "", cleaned))
    else:
        try:
            value = float(cleaned.replace(",", "."))
        except ValueError:
            return None
    folded = fold(suffix or "")
    if folded in ("k", "thousand", "mil") or folded.startswith("тыс"):
        value *= 1000
    elif folded.startswith("млн") or folded in ("million", "millones", "milhoes"):
        value *= 1_000_000
    return value


def _as_number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _near(text: str, start: int, end: int, keywords: tuple[str, ...], span: int = 40) -> bool:
    window = fold(text[max(0, start - span) : end + span])
    return any(k in window for k in keywords)


def _phones(text: str) -> list[tuple[str, int, int]]:
    found = []
    for match in _PHONE.finditer(text):
        raw = match.group(1)
        digits = re.sub(r"\D", "", raw)
        if not 7 <= len(digits) <= 15:
            continue
        if raw.startswith("+") or len(digits) >= 10 or _near(text, match.start(), match.end(), _PHONE_WORDS):
            found.append((("+" if raw.startswith("+") else "") + digits, match.start(), match.end()))
    return found


def _name(text: str) -> str | None:
    for match in _NAME_INTRO.finditer(text):
        parts = []
        for part in match.group(1).split():
            if not part[0].isupper():
                break
            parts.append(part.strip("'’-"))
        if parts:
            return " ".join(parts)
    return None


def _labelled(text: str, field: Field) -> str | None:
    """``<label or key>: value`` / ``<label> is value`` up to the end of the clause."""
    for name in (field.label, field.key.replace("_", " ")):
        pattern = re.compile(
            re.escape(name) + r"\s*(?::|=|—|-|\bis\b|\bes\b|\bé\b|\be\b|это)\s*([^\n,;.!?]+)", re.IGNORECASE
        )
        match = pattern.search(text)
        if match:
            value = match.group(1).strip()
            if value:
                return value
    return None


def _budget(text: str, blocked: list[tuple[int, int]]) -> float | None:
    for match in _NUMBER.finditer(text):
        if any(s <= match.start() < e for s, e in blocked):
            continue
        value = _parse_number(match.group(1), match.group(2))
        if value is None:
            continue
        window = text[max(0, match.start() - 3) : match.end() + 8]
        if _CURRENCY.search(window) or _near(text, match.start(), match.end(), _BUDGET_WORDS):
            return value
    return None


def _labelled_number(text: str, field: Field, blocked: list[tuple[int, int]]) -> float | None:
    keywords = tuple({fold(w) for w in (*words(field.label), *field.key.split("_")) if len(w) > 2})
    for match in _NUMBER.finditer(text):
        if any(s <= match.start() < e for s, e in blocked):
            continue
        if keywords and _near(text, match.start(), match.end(), keywords, span=30):
            return _parse_number(match.group(1), match.group(2))
    return None


def _date(text: str) -> str | None:
    for match in _DATE_ISO.finditer(text):
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3))).isoformat()
        except ValueError:
            continue
    for match in _DATE_DMY.finditer(text):
        try:
            return date(int(match.group(3)), int(match.group(2)), int(match.group(1))).isoformat()
        except ValueError:
            continue
    return None


def _is_name_field(field: Field) -> bool:
    return field.key in _NAME_KEYS or (
        field.type == "text" and any(w in _NAME_LABELS for w in words(field.label)) and "company" not in field.key
    )


def _is_budget_field(field: Field) -> bool:
    haystack = fold(f"{field.key} {field.label}")
    return field.type == "number" and any(w in haystack for w in ("budget", "бюджет", "presupuesto", "orcamento"))


def validate(field: Field, value: Any) -> tuple[Any, str | None]:
    """The value normalised for the field, or an error saying why it is refused."""
    rules = field.validation or {}
    if field.type == "email":
        value = str(value).strip().rstrip(".").lower()
        if not _EMAIL_STRICT.match(value):
            return value, "not a valid email address"
    elif field.type == "phone":
        digits = re.sub(r"\D", "", str(value))
        if not 7 <= len(digits) <= 15:
            return value, "a phone number has 7 to 15 digits"
        value = ("+" if str(value).strip().startswith("+") else "") + digits
    elif field.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value, "not a number"
        value = _as_number(float(value))
        if rules.get("min") is not None and value < rules["min"]:
            return value, f"must be at least {_as_number(float(rules['min']))}"
        if rules.get("max") is not None and value > rules["max"]:
            return value, f"must be at most {_as_number(float(rules['max']))}"
    elif field.type == "select":
        options = [str(o) for o in rules.get("options") or []]
        canonical = next((o for o in options if fold(o) == fold(str(value))), None)
        if canonical is None:
            return value, "not one of the options"
        value = canonical
    elif field.type == "boolean":
        if not isinstance(value, bool):
            return value, "not yes or no"
    elif field.type == "date":
        try:
            value = date.fromisoformat(str(value)).isoformat()
        except ValueError:
            return value, "not a date (YYYY-MM-DD)"
    else:
        value = str(value).strip()
        if not value or len(value) > 1000:
            return value, "empty or too long"
    pattern = rules.get("pattern")
    if pattern and field.type in ("text", "email", "phone"):
        try:
            if not re.fullmatch(pattern, str(value)):
                return value, "does not match the required format"
        except re.error:
            return value, "the field's pattern is invalid"
    return value, None


def _candidate(text: str, field: Field, phones: list[tuple[str, int, int]],
               blocked: list[tuple[int, int]]) -> Any:
    if field.type == "email":
        match = _EMAIL.search(text)
        if match:
            return match.group(0)
        # "Email: maria(at)example" is an attempt at an email: extracted so that it is refused and re-asked.
        return _labelled(text, field)
    if field.type == "phone":
        return phones[0][0] if phones else None
    if field.type == "number":
        if _is_budget_field(field):
            return _budget(text, blocked)
        return _labelled_number(text, field, blocked)
    if field.type == "select":
        options = [str(o) for o in (field.validation or {}).get("options") or []]
        hits = [o for o in options if contains_phrase(text, o)]
        if len(hits) == 1:
            return hits[0]
        labelled = _labelled(text, field)
        return labelled
    if field.type == "date":
        return _date(text)
    if field.type == "boolean":
        labelled = _labelled(text, field)
        if labelled is None:
            return None
        first = words(labelled)[:1]
        if first and first[0] in _YES:
            return True
        if first and first[0] in _NO:
            return False
        return None
    if _is_name_field(field):
        return _name(text) or _labelled(text, field)
    return _labelled(text, field)


def extract_fields(text: str, fields: tuple[Field, ...] | list[Field]) -> list[ExtractedField]:
    """Every field the text gives a value for, validated (``error`` set when refused)."""
    phones = _phones(text)
    blocked = [(s, e) for _, s, e in phones] + [(m.start(), m.end()) for m in _EMAIL.finditer(text)]
    out: list[ExtractedField] = []
    for field in fields:
        raw = _candidate(text, field, phones, blocked)
        if raw is None or raw == "":
            continue
        value, error = validate(field, raw)
        out.append(ExtractedField(field.key, value, error))
    return out
