"""Reporting arithmetic shared by the dashboard and analytics: periods, local days, rates. Pure.

Counting itself happens in SQL (``db/repositories/analytics.py``), where the data is; what is decided
here is what a period and a day *are* for an organisation, so every report cuts time the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["MAX_PERIOD_DAYS", "Period", "PeriodError", "day_start", "local_days", "period", "rate"]

MAX_PERIOD_DAYS = 366
# Reports start no earlier than the epoch and end before 3000: beyond, zone arithmetic overflows.
FIRST_REPORT_DAY = date(1970, 1, 1)
LAST_REPORT_DAY = date(2999, 12, 31)


class PeriodError(ValueError):
    """A reporting period that cannot be served (reversed, or longer than ``MAX_PERIOD_DAYS``)."""


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC, and the organisation's local days it covers (first and last included)."""

    start: datetime
    end: datetime
    first_day: date
    last_day: date


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day begins (a DST change moves it, not the day)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period(first_day: date | None, last_day: date | None, zone: ZoneInfo, today: date, *,
           default_days: int = 30) -> Period:
    """The local days ``first_day``..``last_day`` (both included) as a UTC range.

    Missing ends default to the ``default_days`` ending today. Raises ``PeriodError`` for a reversed or
    too long period, so an API can answer 400 instead of scanning years of rows.
    """
    def bounded(day: date) -> date:
        if not FIRST_REPORT_DAY <= day <= LAST_REPORT_DAY:
            raise PeriodError(f"a period lies between {FIRST_REPORT_DAY} and {LAST_REPORT_DAY}")
        return day

    for given in (first_day, last_day):
        if given is not None:
            bounded(given)
    last = last_day or (today if first_day is None else min(today, first_day + timedelta(days=default_days - 1)))
    first = bounded(first_day or last - timedelta(days=default_days - 1))
    if first > last:
        raise PeriodError(f"the period starts ({first}) after it ends ({last})")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise PeriodError(f"a period is at most {MAX_PERIOD_DAYS} days")
    return Period(start=day_start(first, zone), end=day_start(last + timedelta(days=1), zone),
                  first_day=first, last_day=last)


def local_days(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def rate(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to 4 places; None when there is nothing to divide by (not 0: unknown)."""
    return round(part / whole, 4) if whole else None
