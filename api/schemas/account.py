"""The caller's account and their organisation's settings."""

from __future__ import annotations

import uuid
from datetime import date
from itertools import pairwise

from pydantic import BaseModel, Field, field_validator, model_validator

from api.schemas.common import InputModel, PatchModel, ReadModel
from db.models import Role
from domain.schedule import is_valid_time_zone

HH_MM = r"^([01]\d|2[0-3]):[0-5]\d$"
END_OF_DAY = "24:00"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class OrganizationSummary(ReadModel):
    """The organisation the caller is signed in to."""

    id: uuid.UUID
    name: str
    slug: str
    plan: str


class AccountRead(BaseModel):
    """The caller: who they are and their role in the current organisation."""

    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    org: OrganizationSummary


class AccountUpdate(PatchModel):
    """Change your name or password; a new password needs the current one. Email is not changed here."""

    full_name: str | None = Field(default=None, max_length=200)
    current_password: str | None = Field(default=None, min_length=1, max_length=128)
    new_password: str | None = Field(default=None, min_length=8, max_length=128)

    @model_validator(mode="after")
    def _password_pair(self) -> AccountUpdate:
        if (self.new_password is None) != (self.current_password is None):
            raise ValueError("current_password and new_password must be sent together")
        return self


class TimeSlot(InputModel):
    """Opening hours within one day, local time: ``start`` inclusive, ``end`` exclusive (``24:00`` ok)."""

    start: str = Field(pattern=HH_MM, examples=["09:00"])
    end: str = Field(pattern=rf"{HH_MM}|^24:00$", examples=["18:00"])

    @model_validator(mode="after")
    def _ordered(self) -> TimeSlot:
        # Zero-padded HH:MM strings compare like the times they denote, and "24:00" sorts last.
        if self.end <= self.start:
            raise ValueError("end must be after start (overnight ranges: split them over two days)")
        return self


class WeekHours(InputModel):
    """Opening hours per weekday; a day left out or empty is closed."""

    monday: list[TimeSlot] = Field(default_factory=list, max_length=24)
    tuesday: list[TimeSlot] = Field(default_factory=list, max_length=24)
    wednesday: list[TimeSlot] = Field(default_factory=list, max_length=24)
    thursday: list[TimeSlot] = Field(default_factory=list, max_length=24)
    friday: list[TimeSlot] = Field(default_factory=list, max_length=24)
    saturday: list[TimeSlot] = Field(default_factory=list, max_length=24)
    sunday: list[TimeSlot] = Field(default_factory=list, max_length=24)

    @field_validator(*WEEKDAYS)
    @classmethod
    def _sorted_without_overlap(cls, slots: list[TimeSlot]) -> list[TimeSlot]:
        ordered = sorted(slots, key=lambda s: (s.start, s.end))
        for before, after in pairwise(ordered):
            if after.start < before.end:
                raise ValueError(f"{before.start}-{before.end} overlaps {after.start}-{after.end}")
        return ordered


class OrganizationSettingsRead(BaseModel):
    """Organisation-wide defaults that sequences and agents inherit."""

    name: str
    time_zone: str
    locale: str
    business_hours: WeekHours
    holidays: list[date]


class OrganizationSettingsUpdate(PatchModel):
    """Partial update; ``business_hours`` and ``holidays``, when sent, replace the whole week / list."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    time_zone: str | None = Field(default=None, max_length=64, description="IANA zone, e.g. Europe/Berlin")
    locale: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    business_hours: WeekHours | None = None
    holidays: list[date] | None = Field(default=None, max_length=1000)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_time_zone(value):
            raise ValueError("unknown IANA time zone")
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: list[date] | None) -> list[date] | None:
        return None if value is None else sorted(set(value))
