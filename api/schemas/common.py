"""Shared schema pieces: strict input base, list envelope, pagination query."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

T = TypeVar("T")


def _contains_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_contains_nul(v) for v in value)
    return False


class InputModel(BaseModel):
    """Request bodies: unknown fields are rejected, so nothing can be mass-assigned.

    NUL characters are rejected everywhere: PostgreSQL cannot store them in text or jsonb.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_nul(cls, data: object) -> object:
        if _contains_nul(data):
            raise ValueError("text must not contain NUL (\\u0000) characters")
        return data


class PatchModel(InputModel):
    """Partial update: only the fields sent change, and ``null`` is refused unless listed in ``nullable``.

    Without this a client sending ``{"name": null}`` would either be silently ignored or would write
    NULL into a NOT NULL column (a 500); fields where null means something (e.g. "no parent") opt in.
    """

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("may not be null")
        return value


class ReadModel(BaseModel):
    """Response bodies, built from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class ListResponse(BaseModel, Generic[T]):
    """A page of items and the cursor of the next page (null at the end)."""

    items: list[T]
    next_cursor: str | None


Limit = Annotated[int, Query(ge=1, le=200, description="Page size (max 200)")]
Cursor = Annotated[str | None, Query(max_length=512, description="Opaque cursor from next_cursor")]
