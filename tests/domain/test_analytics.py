"""Reporting periods: local days of the organisation's zone as UTC ranges, DST included; rates."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.analytics import MAX_PERIOD_DAYS, PeriodError, day_start, local_days, period, rate

ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
                         "America/Sao_Paulo"])
DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


@given(DAYS, st.integers(min_value=0, max_value=MAX_PERIOD_DAYS - 1), ZONES)
def test_a_period_covers_exactly_its_local_days_whatever_the_dst_changes(first: date, extra: int, zone: str) -> None:
    tz = ZoneInfo(zone)
    last = first + timedelta(days=extra)
    span = period(first, last, tz, today=last)
    assert (span.first_day, span.last_day) == (first, last)
    assert span.start == day_start(first, tz)
    assert span.end == day_start(last + timedelta(days=1), tz)
    assert span.start.astimezone(tz).date() == first
    assert (span.end - timedelta(microseconds=1)).astimezone(tz).date() == last
    # Each local day is 24 h give or take a DST change (Lord Howe moves by 30 minutes).
    days = len(local_days(first, last))
    assert abs((span.end - span.start) - timedelta(days=days)) <= timedelta(hours=1) * min(days, 2)


def test_missing_ends_default_to_the_thirty_days_ending_today() -> None:
    tz = ZoneInfo("Europe/Berlin")
    today = date(2026, 3, 29)  # the day Berlin moves its clocks forward
    span = period(None, None, tz, today)
    assert (span.first_day, span.last_day) == (date(2026, 2, 28), today)
    assert (span.end - day_start(today, tz)) == timedelta(hours=23)
    assert period(date(2026, 3, 1), None, tz, today).last_day == today  # 30 days on, but not past today
    assert period(None, date(2026, 1, 31), tz, today).first_day == date(2026, 1, 2)


def test_reversed_and_too_long_periods_are_refused() -> None:
    tz = ZoneInfo("UTC")
    with pytest.raises(PeriodError, match="starts"):
        period(date(2026, 5, 2), date(2026, 5, 1), tz, date(2026, 6, 1))
    with pytest.raises(PeriodError, match=str(MAX_PERIOD_DAYS)):
        period(date(2025, 1, 1), date(2026, 1, 2), tz, date(2026, 6, 1))
    for first, last in ((date.min, date(1, 1, 2)), (date(9999, 12, 30), date.max), (None, date.min)):
        with pytest.raises(PeriodError, match="between"):
            period(first, last, ZoneInfo("Pacific/Kiritimati"), date(2026, 6, 1))


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=10_000))
def test_a_rate_is_a_share_or_unknown(part: int, whole: int) -> None:
    result = rate(min(part, whole), whole)
    if whole == 0:
        assert result is None
    else:
        assert result is not None
        assert 0 <= result <= 1
