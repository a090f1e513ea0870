"""Send-window and scheduling maths for multi-day follow-up sequences.

Everything here is pure: no clock, no randomness, no I/O of our own, so Temporal workflows may call it
(``zoneinfo.ZoneInfo(key)`` reads the system tzdata once per process and is allowed by the sandbox).

Semantics, stated once so every function agrees:

* An instant is *inside the window* when its **wall-clock reading** in the window's zone falls inside
  one of the half-open ranges ``[start, end)`` configured for that local weekday, and the local date is
  not a holiday. :func:`is_within_window` is exactly that predicate.
* :func:`next_send_time` returns the first instant ``>= earliest`` for which the predicate holds. Two DST
  rules fall out of that definition rather than being special-cased: a range start inside a
  spring-forward gap (a wall time that never occurs) opens at the first valid instant after the gap,
  and a range start inside a fall-back fold (a wall time that occurs twice) opens at its first
  occurrence.
* All datetimes crossing this API are timezone-aware; results are always in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "MAX_SEARCH_DAYS",
    "BusinessHours",
    "CapUsage",
    "DailyCap",
    "NoSendWindowError",
    "SendWindow",
    "TimeRange",
    "is_valid_time_zone",
    "is_within_window",
    "next_send_time",
    "pause_shift",
    "resolve_time_zone",
    "schedule_with_cap",
    "usage_lookup",
    "wait_until",
]

MAX_SEARCH_DAYS = 400
"""How far ahead (from the requested earliest instant) a send slot is searched for before giving up."""

# Offsets are compared at this spacing to detect DST/offset transitions, then bisected to the exact
# microsecond. No tzdata zone has two transitions that cancel out within six hours, so none is missed.
_TRANSITION_PROBE_STEP = timedelta(hours=6)
_ONE_MICROSECOND = timedelta(microseconds=1)

# Keys that ZoneInfo accepts but that are not portable civil-time zones: "localtime" depends on the
# machine (non-deterministic across workers), "right/" zones count leap seconds, "posix/" duplicates.
_REJECTED_ZONE_KEYS = frozenset({"localtime", "posixrules"})
_REJECTED_ZONE_PREFIXES = ("right/", "posix/")

CapUsage = Mapping[date, int]
"""Sends already made (or booked) per local date in the window's zone."""


class NoSendWindowError(ValueError):
    """No instant inside the send window exists within the search horizon."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeRange(_Frozen):
    """A half-open local wall-clock range ``[start, end)`` within a single day."""

    start: time
    end: time

    @model_validator(mode="after")
    def _check_order(self) -> TimeRange:
        # Wall-clock ranges are meaningless with a fixed tzinfo attached: the zone belongs to the window.
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("time range bounds must be naive local times (the zone is the window's)")
        # Overnight ranges (22:00-02:00) are rejected rather than guessed at: configure the two days'
        # ranges separately (e.g. 22:00-23:59:59.999999 and 00:00-02:00); `time.max` means end of day.
        if self.end <= self.start:
            raise ValueError("time range end must be after its start (overnight ranges are not allowed)")
        return self

    def contains(self, clock: time) -> bool:
        """Whether a naive wall-clock time lies inside this range (``fold`` is ignored)."""
        return self.start <= clock < self.end


def _parse_weekday(key: object) -> int:
    # JSON object keys arrive as strings, so accept "0".."6" as well as ints (but not bools or floats).
    if isinstance(key, bool):
        raise ValueError(f"weekday key must be 0..6 (Mon..Sun), got {key!r}")
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key.strip())
    if not isinstance(key, int) or not 0 <= key <= 6:
        raise ValueError(f"weekday key must be 0..6 (Mon..Sun), got {key!r}")
    return key


class BusinessHours(_Frozen):
    """Opening ranges per local weekday (0=Mon..6=Sun) plus local holiday dates.

    ``days`` is stored as exactly seven tuples (Mon..Sun) so the model is hashable and serialises
    deterministically; on input it also accepts a sparse mapping ``{weekday: [ranges]}`` where missing
    weekdays are closed. Ranges of a day are sorted and must not overlap (touching is fine).
    """

    days: tuple[tuple[TimeRange, ...], ...]
    holidays: tuple[date, ...] = ()

    @field_validator("days", mode="before")
    @classmethod
    def _days_from_mapping(cls, value: object) -> object:
        if isinstance(value, Mapping):
            week: list[object] = [() for _ in range(7)]
            for key, ranges in value.items():
                week[_parse_weekday(key)] = ranges
            return week
        return value

    @field_validator("days", mode="after")
    @classmethod
    def _check_days(cls, value: tuple[tuple[TimeRange, ...], ...]) -> tuple[tuple[TimeRange, ...], ...]:
        if len(value) != 7:
            raise ValueError(f"days must have one entry per weekday (7), got {len(value)}")
        week: list[tuple[TimeRange, ...]] = []
        for weekday, ranges in enumerate(value):
            ordered = tuple(sorted(ranges, key=lambda r: (r.start, r.end)))
            for before, after in pairwise(ordered):
                if after.start < before.end:
                    raise ValueError(
                        f"weekday {weekday}: ranges {before.start}-{before.end} and {after.start}-{after.end} overlap"
                    )
            week.append(ordered)
        return tuple(week)

    @field_validator("holidays", mode="after")
    @classmethod
    def _normalise_holidays(cls, value: tuple[date, ...]) -> tuple[date, ...]:
        # Sorted and de-duplicated so equal configurations compare and serialise equal.
        return tuple(sorted(set(value)))

    @classmethod
    def default(cls) -> BusinessHours:
        """Monday to Friday, 09:00-18:00, no holidays."""
        office = (TimeRange(start=time(9), end=time(18)),)
        return cls(days=(office,) * 5 + ((), ()))

    @cached_property
    def _holiday_set(self) -> frozenset[date]:
        return frozenset(self.holidays)

    @property
    def has_hours(self) -> bool:
        """Whether at least one weekday has an opening range."""
        return any(self.days)

    def ranges_on(self, weekday: int) -> tuple[TimeRange, ...]:
        """The sorted ranges for a weekday (0=Mon..6=Sun)."""
        return self.days[weekday]

    def is_holiday(self, day: date) -> bool:
        """Whether a local date is a configured holiday."""
        return day in self._holiday_set

    def is_open_day(self, day: date) -> bool:
        """Whether a local date has any opening range and is not a holiday."""
        return bool(self.days[day.weekday()]) and not self.is_holiday(day)

    def contains(self, wall: datetime) -> bool:
        """Whether a naive local wall-clock datetime lies inside business hours."""
        day = wall.date()
        if not self.is_open_day(day):
            return False
        clock = wall.time()
        return any(r.contains(clock) for r in self.days[day.weekday()])


def is_valid_time_zone(name: str) -> bool:
    """Whether ``name`` is a usable IANA zone key on this system (e.g. ``Europe/Berlin``)."""
    if name in _REJECTED_ZONE_KEYS or name.startswith(_REJECTED_ZONE_PREFIXES):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError covers malformed keys ("", "../x", absolute paths) and non-TZif files ("zone.tab").
        return False
    return True


class SendWindow(_Frozen):
    """Business hours interpreted in one IANA time zone."""

    hours: BusinessHours = Field(default_factory=BusinessHours.default)
    tz: str

    @field_validator("tz")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        if not is_valid_time_zone(value):
            raise ValueError(f"unknown time zone {value!r}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The ``ZoneInfo`` for ``tz`` (ZoneInfo caches instances per key)."""
        return ZoneInfo(self.tz)


class DailyCap(_Frozen):
    """At most ``limit`` sends per local day in the window's zone."""

    limit: int = Field(ge=1)


def resolve_time_zone(lead_tz: str | None, org_tz: str) -> str:
    """The lead's zone when known and valid, otherwise the organisation's (which must be valid)."""
    # CRM data is free text: surrounding whitespace is tolerated, anything else unknown falls back.
    if lead_tz is not None and is_valid_time_zone(lead_tz.strip()):
        return lead_tz.strip()
    if not is_valid_time_zone(org_tz):
        raise ValueError(f"unknown organisation time zone {org_tz!r}")
    return org_tz


def usage_lookup(usage: CapUsage) -> Callable[[date], int]:
    """Adapt a ``{local date: count}`` mapping to the lookup :func:`schedule_with_cap` expects."""
    return lambda day: usage.get(day, 0)


# --- internals -------------------------------------------------------------------------------------


def _as_utc(value: datetime, name: str) -> datetime:
    # A naive datetime is ambiguous (server-local? UTC?); refuse it instead of guessing.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # ZoneInfo always yields an offset for an aware datetime
    return offset


def _wall(instant: datetime, offset: timedelta) -> datetime:
    """Naive local wall-clock reading of a UTC instant under a fixed offset."""
    return (instant + offset).replace(tzinfo=None)


def _first_transition(zone: ZoneInfo, after: datetime, until: datetime) -> datetime | None:
    """First instant in ``(after, until]`` whose UTC offset differs from the offset at ``after``."""
    base = _offset(zone, after)
    low = after
    while low < until:
        high = min(low + _TRANSITION_PROBE_STEP, until)
        if _offset(zone, high) != base:
            # Invariant: offset(low) == base != offset(high); shrink to adjacent microseconds.
            while high - low > _ONE_MICROSECOND:
                middle = low + (high - low) // 2
                if _offset(zone, middle) == base:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


def _first_open_wall(hours: BusinessHours, wall: datetime, until: datetime) -> datetime | None:
    """First naive wall time ``>= wall`` inside business hours, or ``None`` if it would be after ``until``.

    This is pure calendar arithmetic on wall-clock readings; the caller maps it back to an instant.
    """
    day = wall.date()
    clock = wall.time()
    while day <= until.date():
        if hours.is_open_day(day):
            for time_range in hours.ranges_on(day.weekday()):
                if day == wall.date():
                    if time_range.end <= clock:
                        continue
                    found = wall if time_range.start <= clock else datetime.combine(day, time_range.start)
                else:
                    found = datetime.combine(day, time_range.start)
                return found if found <= until else None
        if day == date.max:
            break
        day += timedelta(days=1)
    return None


def _next_local_day_start(zone: ZoneInfo, after: datetime) -> datetime:
    """The first instant after ``after`` whose local date differs from the local date at ``after``.

    Walks constant-offset segments like :func:`next_send_time`, so a midnight inside a DST gap (the
    day then starts when the gap ends) or a clock jump across midnight is handled exactly.
    """
    day = after.astimezone(zone).date()
    cursor = after
    while True:
        offset = _offset(zone, cursor)
        wall_day = _wall(cursor, offset).date()
        if cursor > after and wall_day != day:
            return cursor  # a transition moved the clock onto another date
        # Where this segment's wall clock reaches the next midnight, unless a transition comes first.
        midnight = (datetime.combine(wall_day + timedelta(days=1), time()) - offset).replace(tzinfo=UTC)
        transition = _first_transition(zone, cursor, midnight)
        if transition is None:
            return midnight
        cursor = transition


def _horizon(start: datetime) -> datetime:
    try:
        return start + timedelta(days=MAX_SEARCH_DAYS)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


# --- public scheduling functions -------------------------------------------------------------------


def is_within_window(window: SendWindow, at: datetime) -> bool:
    """Whether the aware instant ``at`` reads, in the window's zone, as an open time on an open day."""
    local = _as_utc(at, "at").astimezone(window.zone)
    return window.hours.contains(local.replace(tzinfo=None))


def next_send_time(window: SendWindow, earliest: datetime) -> datetime:
    """The first instant ``>= earliest`` inside the window, in UTC.

    Raises :class:`NoSendWindowError` when the week has no hours at all or nothing opens within
    :data:`MAX_SEARCH_DAYS` days of ``earliest``.
    """
    start = _as_utc(earliest, "earliest")
    hours = window.hours
    if not hours.has_hours:
        raise NoSendWindowError("business hours have no opening range on any weekday")
    zone = window.zone
    horizon = _horizon(start)
    try:
        # Walk the timeline one constant-offset segment at a time. Inside a segment the wall clock is
        # just ``utc + offset`` (continuous, increasing), so the first open wall time maps straight
        # back to an instant; if a transition comes first, restart from it with the new offset. Gaps
        # and folds are thereby handled by the same code path as ordinary days.
        cursor = start
        while True:
            offset = _offset(zone, cursor)
            found = _first_open_wall(hours, _wall(cursor, offset), _wall(horizon, offset))
            candidate = (found - offset).replace(tzinfo=UTC) if found is not None else horizon
            transition = _first_transition(zone, cursor, candidate)
            if transition is None:
                if found is None:
                    break
                return candidate
            cursor = transition
    except OverflowError as exc:
        # Only reachable near year 9999; treat "beyond the calendar" as "no window".
        raise NoSendWindowError("no send window before the end of the supported calendar") from exc
    raise NoSendWindowError(f"no send window within {MAX_SEARCH_DAYS} days of {start.isoformat()}")


def wait_until(window: SendWindow, start: datetime, delay: timedelta, align_to_window: bool) -> datetime:
    """``start + delay`` in UTC, moved to the next send time when ``align_to_window`` is set."""
    if delay < timedelta(0):
        raise ValueError("delay must not be negative")
    target = _as_utc(start, "start") + delay
    return next_send_time(window, target) if align_to_window else target


def schedule_with_cap(
    window: SendWindow,
    earliest: datetime,
    cap: DailyCap | None,
    used_on: Callable[[date], int],
) -> datetime:
    """First in-window instant ``>= earliest`` on a local day whose usage is below the cap, in UTC.

    ``used_on(local_date)`` reports how many sends that day (in the window's zone) already holds; the
    caller supplies it so this stays pure. A send that does not fit is deferred to the next open day
    with room, never dropped; :class:`NoSendWindowError` is raised only if no such day exists within
    :data:`MAX_SEARCH_DAYS` days of ``earliest``.
    """
    start = _as_utc(earliest, "earliest")
    candidate = next_send_time(window, start)
    if cap is None:
        return candidate
    zone = window.zone
    horizon = _horizon(start)
    while candidate <= horizon:
        day = candidate.astimezone(zone).date()
        if used_on(day) < cap.limit:
            return candidate
        try:
            # Strictly later than ``candidate``, so the loop always progresses; if a backward clock
            # jump returns to the same full date, that date is simply skipped again.
            resume = _next_local_day_start(zone, candidate)
        except OverflowError:
            break
        if resume > horizon:
            break
        candidate = next_send_time(window, resume)
    raise NoSendWindowError(f"no send window with room under the daily cap within {MAX_SEARCH_DAYS} days")


def pause_shift(next_at: datetime, paused_at: datetime, resumed_at: datetime) -> datetime:
    """Shift a pending send by the pause length so the remaining wait is preserved, in UTC.

    The result is never earlier than ``resumed_at`` (a send already due when paused is due on resume).
    It is not re-aligned to a send window: pass it through :func:`next_send_time` for that.
    """
    next_utc = _as_utc(next_at, "next_at")
    paused = _as_utc(paused_at, "paused_at")
    resumed = _as_utc(resumed_at, "resumed_at")
    if resumed < paused:
        raise ValueError("resumed_at must not be before paused_at")
    return max(next_utc + (resumed - paused), resumed)
