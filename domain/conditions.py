"""Conditions on a lead, shared by sequence branches and trigger filters. Pure: workflows may import it.

A condition reads a :class:`LeadFacts` snapshot (our mirror of the Kommo lead plus what the running
enrolment knows, e.g. whether the lead replied). Kinds:

* ``field``: a built-in lead attribute (``name``, ``price``, ``email``, ``phone``, ``contact_name``,
  ``pipeline_id``, ``status_id``, ``time_zone``) or a Kommo custom field by id (``"123"``) compared with
  ``op``; a missing value only satisfies ``not_exists`` and ``neq``.
* ``stage``: the lead's status is one of ``status_ids`` (optionally in ``pipeline_id``).
* ``tag``: the lead has (or, with ``present: false``, lacks) a tag, case-insensitively.
* ``replied``: the lead replied during this enrolment (always false outside an enrolment).
* ``all`` / ``any`` / ``not``: combinators, nested at most :data:`MAX_DEPTH` deep.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BUILTIN_FIELDS",
    "MAX_DEPTH",
    "AllCondition",
    "AnyCondition",
    "Condition",
    "FieldCondition",
    "LeadFacts",
    "NotCondition",
    "RepliedCondition",
    "StageCondition",
    "TagCondition",
    "evaluate",
    "evaluate_all",
]

MAX_DEPTH = 5
"""Deepest nesting of all/any/not accepted (hostile JSON must not recurse without bound)."""

BUILTIN_FIELDS = frozenset(
    {"name", "price", "email", "phone", "contact_name", "pipeline_id", "status_id", "time_zone"}
)

Scalar = str | int | float | bool | None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LeadFacts(_Frozen):
    """What conditions, enrolment rules and exit criteria may read about a lead."""

    lead_id: uuid.UUID | None = None
    kommo_id: int | None = None
    name: str = ""
    price: int | None = None
    email: str | None = None
    phone: str | None = None
    contact_name: str | None = None
    pipeline_id: int | None = None
    status_id: int | None = None
    time_zone: str | None = None
    tags: tuple[str, ...] = ()
    # Kommo custom field values by field id (as a string), as the CRM mirror stores them.
    fields: Mapping[str, Any] = Field(default_factory=dict)
    opted_out: bool = False
    replied: bool = False

    def value_of(self, name: str) -> Any:
        """A built-in attribute or the first value of a custom field; ``None`` when absent."""
        if name in BUILTIN_FIELDS:
            return getattr(self, name)
        raw = self.fields.get(name)
        # The mirror keeps Kommo's shape: a list of values, each a scalar or {"value", "enum_id"}.
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if isinstance(raw, dict):
            raw = raw.get("value")
        return raw

    def has_tag(self, tag: str) -> bool:
        """Tags compare case-insensitively and ignoring surrounding space, as Kommo does."""
        wanted = tag.strip().casefold()
        return any(t.strip().casefold() == wanted for t in self.tags)


FieldOp = Literal["eq", "neq", "contains", "exists", "not_exists", "gt", "gte", "lt", "lte", "in"]


class FieldCondition(_Frozen):
    """Compare one lead field with ``value``."""

    kind: Literal["field"] = "field"
    field: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    op: FieldOp = "eq"
    value: Scalar | list[Scalar] = None

    @model_validator(mode="after")
    def _check_value(self) -> FieldCondition:
        if self.op == "in" and not isinstance(self.value, list):
            raise ValueError("'in' needs a list value")
        if self.op != "in" and isinstance(self.value, list):
            raise ValueError(f"'{self.op}' needs a single value, not a list")
        if self.op in {"gt", "gte", "lt", "lte"} and _number(self.value) is None:
            raise ValueError(f"'{self.op}' needs a numeric value")
        return self


class StageCondition(_Frozen):
    """The lead sits in one of ``status_ids`` (and in ``pipeline_id`` when given)."""

    kind: Literal["stage"] = "stage"
    status_ids: tuple[int, ...] = Field(min_length=1, max_length=100)
    pipeline_id: int | None = None


class TagCondition(_Frozen):
    """The lead has ``tag`` (or lacks it when ``present`` is false)."""

    kind: Literal["tag"] = "tag"
    tag: str = Field(min_length=1, max_length=100)
    present: bool = True


class RepliedCondition(_Frozen):
    """The lead replied during this enrolment (``value`` false: it did not)."""

    kind: Literal["replied"] = "replied"
    value: bool = True


class AllCondition(_Frozen):
    """Every nested condition holds (an empty list holds)."""

    kind: Literal["all"] = "all"
    conditions: tuple[Condition, ...] = Field(max_length=20)

    @model_validator(mode="after")
    def _bounded(self) -> AllCondition:
        _check_depth(self)
        return self


class AnyCondition(_Frozen):
    """At least one nested condition holds (an empty list does not)."""

    kind: Literal["any"] = "any"
    conditions: tuple[Condition, ...] = Field(max_length=20)

    @model_validator(mode="after")
    def _bounded(self) -> AnyCondition:
        _check_depth(self)
        return self


class NotCondition(_Frozen):
    """The nested condition does not hold."""

    kind: Literal["not"] = "not"
    condition: Condition

    @model_validator(mode="after")
    def _bounded(self) -> NotCondition:
        _check_depth(self)
        return self


Condition = Annotated[
    FieldCondition | StageCondition | TagCondition | RepliedCondition | AllCondition | AnyCondition | NotCondition,
    Field(discriminator="kind"),
]

for _model in (AllCondition, AnyCondition, NotCondition):
    _model.model_rebuild()


def _depth(condition: BaseModel) -> int:
    if isinstance(condition, AllCondition | AnyCondition):
        return 1 + max((_depth(c) for c in condition.conditions), default=0)
    if isinstance(condition, NotCondition):
        return 1 + _depth(condition.condition)
    return 1


def _check_depth(condition: BaseModel) -> None:
    if _depth(condition) > MAX_DEPTH:
        raise ValueError(f"conditions may be nested at most {MAX_DEPTH} deep")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _same(left: Any, right: Any) -> bool:
    # CRM values arrive as text or numbers depending on the field type: compare numbers as numbers,
    # everything else as case-insensitive text, so "100" equals 100 and "Yes" equals "yes".
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right or str(left).casefold() == str(right).casefold()
    return str(left).strip().casefold() == str(right).strip().casefold()


def _compare_field(condition: FieldCondition, facts: LeadFacts) -> bool:
    actual = facts.value_of(condition.field)
    present = actual is not None and actual != "" and actual != []
    op = condition.op
    if op == "exists":
        return present
    if op == "not_exists":
        return not present
    if op == "neq":
        return not present or not _same(actual, condition.value)
    if not present:
        return False
    if op == "eq":
        return _same(actual, condition.value)
    if op == "in":
        assert isinstance(condition.value, list)
        return any(_same(actual, option) for option in condition.value)
    if op == "contains":
        if isinstance(actual, list | tuple):
            return any(_same(item, condition.value) for item in actual)
        return str(condition.value).casefold() in str(actual).casefold()
    left, right = _number(actual), _number(condition.value)
    if left is None or right is None:
        return False
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]


def evaluate(condition: Condition, facts: LeadFacts) -> bool:
    """Whether ``condition`` holds for the lead."""
    if isinstance(condition, FieldCondition):
        return _compare_field(condition, facts)
    if isinstance(condition, StageCondition):
        in_pipeline = condition.pipeline_id is None or condition.pipeline_id == facts.pipeline_id
        return in_pipeline and facts.status_id in condition.status_ids
    if isinstance(condition, TagCondition):
        return facts.has_tag(condition.tag) == condition.present
    if isinstance(condition, RepliedCondition):
        return facts.replied == condition.value
    if isinstance(condition, AllCondition):
        return all(evaluate(c, facts) for c in condition.conditions)
    if isinstance(condition, AnyCondition):
        return any(evaluate(c, facts) for c in condition.conditions)
    return not evaluate(condition.condition, facts)


def evaluate_all(conditions: tuple[Condition, ...] | list[Condition], facts: LeadFacts) -> bool:
    """A list of conditions is a conjunction (triggers store their filters as a list)."""
    return all(evaluate(c, facts) for c in conditions)
