"""Send-window maths: example tests for the tricky calendar cases, Hypothesis properties for the rest.

The properties check results against an independent wall-clock oracle (`_oracle_open`) and, for
minimality, a brute-force minute scan. Minute scanning is exact here because every zone used has
offsets and transitions on whole minutes and generated ranges start on whole minutes, so every
stretch of in-window time begins on a whole UTC minute.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.schedule import (
    MAX_SEARCH_DAYS,
    BusinessHours,
    DailyCap,
    NoSendWindowError,
    SendWindow,
    TimeRange,
    is_valid_time_zone,
    is_within_window,
    next_send_time,
    pause_shift,
    resolve_time_zone,
    schedule_with_cap,
    usage_lookup,
    wait_until,
)

ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Europe/Moscow",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Sao_Paulo",  # DST at local midnight until 2019
    "UTC",
]
NY = "America/New_York"
MINUTE = timedelta(minutes=1)
# Brute-force minimality scans stop after this long so the file stays fast; beyond it the structural
# checks (result in window, on a minute, not in window just before) still apply.
SCAN_LIMIT = timedelta(days=2)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0) -> datetime:
    """An aware datetime from local wall-clock fields."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def rng(start: str, end: str) -> TimeRange:
    return TimeRange(start=time.fromisoformat(start), end=time.fromisoformat(end))


def hours_every_day(*ranges: TimeRange, holidays: tuple[date, ...] = ()) -> BusinessHours:
    return BusinessHours(days=(tuple(ranges),) * 7, holidays=holidays)


# --- independent oracle ----------------------------------------------------------------------------


def _oracle_open(window: SendWindow, at: datetime) -> bool:
    wall = at.astimezone(ZoneInfo(window.tz))
    day = wall.date()
    if day in window.hours.holidays:
        return False
    clock = wall.time().replace(fold=0)
    return any(r.start <= clock < r.end for r in window.hours.days[day.weekday()])


def _ceil_minute(at: datetime) -> datetime:
    floor = at.replace(second=0, microsecond=0)
    return floor if floor == at else floor + MINUTE


def _open_minutes_before(window: SendWindow, start: datetime, stop: datetime) -> list[datetime]:
    """Whole UTC minutes in [start, min(stop, start + SCAN_LIMIT)) that are inside the window."""
    found = []
    minute = _ceil_minute(start)
    end = min(stop, start + SCAN_LIMIT)
    while minute < end:
        if _oracle_open(window, minute):
            found.append(minute)
        minute += MINUTE
    return found


@cache
def _transitions(zone_name: str, year: int) -> tuple[datetime, ...]:
    """Offset transitions of a zone in a year, found by daily probing and bisecting to the second."""
    zone = ZoneInfo(zone_name)

    def offset(at: datetime) -> timedelta | None:
        return at.astimezone(zone).utcoffset()

    found = []
    day = utc(year, 1, 1)
    while day.year == year:
        following = day + timedelta(days=1)
        if offset(day) != offset(following):
            low, high = day, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) // 2
                low, high = (middle, high) if offset(middle) == offset(day) else (low, middle)
            found.append(high)
        day = following
    return tuple(found)


# --- strategies --------------------------------------------------------------------------------------

# Minutes of the day; 1440 stands for `time.max` (open until midnight). Boundaries near the usual
# DST hours (00:00-04:00) are over-weighted so ranges often start or end inside a gap or fold.
_SPECIAL_MINUTES = [0, 30, 60, 90, 105, 120, 135, 150, 180, 210, 240, 540, 1080, 1410, 1439, 1440]
_boundaries = st.one_of(st.sampled_from(_SPECIAL_MINUTES), st.integers(0, 1440))


def _minute_to_time(minute: int) -> time:
    return time.max if minute == 1440 else time(minute // 60, minute % 60)


@st.composite
def day_ranges(draw: st.DrawFn) -> tuple[TimeRange, ...]:
    points = sorted(draw(st.lists(_boundaries, max_size=6, unique=True)))
    pairs = zip(points[0::2], points[1::2], strict=False)
    return tuple(TimeRange(start=_minute_to_time(a), end=_minute_to_time(b)) for a, b in pairs)


weeks = st.lists(day_ranges(), min_size=7, max_size=7).filter(any)


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    """Aware UTC instants across decades, often within a day and a half of an offset transition."""
    if draw(st.booleans()):
        year = draw(st.integers(1995, 2045))
        transitions = _transitions(zone, year)
        if transitions:
            around = draw(st.sampled_from(transitions))
            shifted = around + timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60)))
            # Mostly whole minutes (to land exactly on boundaries), sometimes awkward seconds.
            return shifted + timedelta(microseconds=draw(st.sampled_from([0, 0, 0, 1, 59_999_999])))
    return draw(st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2060, 12, 31), timezones=st.just(UTC)))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[SendWindow, datetime]:
    zone = draw(st.sampled_from(ZONES))
    earliest = draw(instants(zone))
    # Holidays near `earliest` so they actually matter.
    start_day = earliest.astimezone(ZoneInfo(zone)).date()
    offsets = draw(st.lists(st.integers(-1, 20), max_size=6))
    holidays = tuple(start_day + timedelta(days=n) for n in offsets)
    window = SendWindow(hours=BusinessHours(days=draw(weeks), holidays=holidays), tz=zone)
    return window, earliest


@st.composite
def usages(draw: st.DrawFn, window: SendWindow, earliest: datetime) -> dict[date, int]:
    start_day = earliest.astimezone(window.zone).date()
    counts = draw(st.dictionaries(st.integers(-1, 14), st.integers(0, 4), max_size=12))
    return {start_day + timedelta(days=n): count for n, count in counts.items()}


# --- properties ------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(scenarios())
def test_next_send_time_is_first_open_instant(scenario: tuple[SendWindow, datetime]) -> None:
    window, earliest = scenario
    result = next_send_time(window, earliest)

    assert result.tzinfo is UTC
    assert result >= earliest
    assert is_within_window(window, result)
    assert _oracle_open(window, result)  # on no holiday, inside a range on the local wall clock
    assert next_send_time(window, result) == result  # idempotent

    if _oracle_open(window, earliest):
        assert result == earliest
        return
    # Not open at `earliest`, so the result is the left edge of an open stretch: on a whole minute,
    # closed a microsecond before, and no open minute in between.
    assert result.second == 0
    assert result.microsecond == 0
    assert not is_within_window(window, result - timedelta(microseconds=1))
    assert _open_minutes_before(window, earliest, result) == []


@PROPERTY_SETTINGS
@given(scenarios(), st.integers(0, 3 * 24 * 60))
def test_next_send_time_is_monotonic(scenario: tuple[SendWindow, datetime], later_by: int) -> None:
    window, earliest = scenario
    later = earliest + timedelta(minutes=later_by)
    assert next_send_time(window, earliest) <= next_send_time(window, later)


@PROPERTY_SETTINGS
@given(scenarios())
def test_within_window_iff_fixed_point(scenario: tuple[SendWindow, datetime]) -> None:
    window, at = scenario
    assert is_within_window(window, at) == (next_send_time(window, at) == at) == _oracle_open(window, at)


@PROPERTY_SETTINGS
@given(st.data(), scenarios(), st.integers(1, 3))
def test_schedule_with_cap_defers_to_a_day_with_room(
    data: st.DataObject, scenario: tuple[SendWindow, datetime], limit: int
) -> None:
    window, earliest = scenario
    usage = data.draw(usages(window, earliest))
    used_on = usage_lookup(usage)

    result = schedule_with_cap(window, earliest, DailyCap(limit=limit), used_on)

    day = result.astimezone(window.zone).date()
    assert result >= next_send_time(window, earliest)
    assert is_within_window(window, result)
    assert used_on(day) < limit  # never lands on a full day (and nothing was dropped: we got a time)
    assert schedule_with_cap(window, result, DailyCap(limit=limit), used_on) == result
    # Minimal: every open minute skipped over belongs to a full local day.
    for minute in _open_minutes_before(window, earliest, result):
        assert used_on(minute.astimezone(window.zone).date()) >= limit
    if not usage or max(usage.values()) < limit:
        assert result == next_send_time(window, earliest)


@PROPERTY_SETTINGS
@given(scenarios())
def test_cap_none_is_plain_next_send_time(scenario: tuple[SendWindow, datetime]) -> None:
    window, earliest = scenario
    assert schedule_with_cap(window, earliest, None, lambda _: 10**6) == next_send_time(window, earliest)


@PROPERTY_SETTINGS
@given(scenarios(), st.integers(0, 10 * 24 * 60 * 60), st.booleans())
def test_wait_until(scenario: tuple[SendWindow, datetime], seconds: int, align: bool) -> None:
    window, start = scenario
    delay = timedelta(seconds=seconds)
    result = wait_until(window, start, delay, align_to_window=align)
    assert result == (next_send_time(window, start + delay) if align else start + delay)
    assert result >= start + delay


_aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from([UTC, ZoneInfo(NY)])
)


@PROPERTY_SETTINGS
@given(_aware, _aware, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)))
def test_pause_shift_preserves_remaining_wait(next_at: datetime, paused_at: datetime, pause: timedelta) -> None:
    resumed_at = paused_at + pause
    result = pause_shift(next_at, paused_at, resumed_at)
    assert result >= resumed_at
    # Elapsed time, not wall time: subtracting two datetimes that share a tzinfo in Python compares
    # wall clocks (a pause spanning a DST change would be off by an hour), hence the UTC conversion.
    remaining = next_at.astimezone(UTC) - paused_at.astimezone(UTC)
    assert result - resumed_at.astimezone(UTC) == max(remaining, timedelta(0))


# --- examples ----------------------------------------------------------------------------------------


def test_friday_evening_plus_two_minutes_is_monday_opening() -> None:
    window = SendWindow(tz=NY)  # default hours: Mon-Fri 09:00-18:00
    friday = local(NY, 2026, 3, 6, 17, 59)
    result = wait_until(window, friday, timedelta(minutes=2), align_to_window=True)
    # Monday 09:00 local; DST began on the Sunday in between, so that is 13:00 UTC, not 14:00.
    assert result == local(NY, 2026, 3, 9, 9, 0) == utc(2026, 3, 9, 13, 0)


def test_inside_window_is_returned_unchanged_in_utc() -> None:
    window = SendWindow(tz="Europe/Berlin")
    at = datetime(2026, 6, 10, 12, 34, 56, tzinfo=ZoneInfo("Europe/Berlin"))
    assert next_send_time(window, at) == at
    assert next_send_time(window, at).tzinfo is UTC


def test_end_of_range_is_exclusive() -> None:
    window = SendWindow(tz="UTC")
    assert is_within_window(window, utc(2026, 6, 10, 17, 59, 59))
    assert not is_within_window(window, utc(2026, 6, 10, 18, 0))
    assert next_send_time(window, utc(2026, 6, 10, 18, 0)) == utc(2026, 6, 11, 9, 0)


def test_holidays_are_skipped() -> None:
    hours = BusinessHours(days=BusinessHours.default().days, holidays=[date(2026, 12, 25)])
    window = SendWindow(hours=hours, tz="Europe/Berlin")
    christmas_eve_evening = local("Europe/Berlin", 2026, 12, 24, 18, 30)
    assert next_send_time(window, christmas_eve_evening) == local("Europe/Berlin", 2026, 12, 28, 9, 0)
    assert not is_within_window(window, local("Europe/Berlin", 2026, 12, 25, 10, 0))


def test_several_ranges_per_day_use_the_gap_between_them() -> None:
    hours = hours_every_day(rng("09:00", "12:00"), rng("14:00", "18:00"))
    window = SendWindow(hours=hours, tz="UTC")
    assert next_send_time(window, utc(2026, 6, 10, 12, 30)) == utc(2026, 6, 10, 14, 0)


def test_spring_forward_range_start_in_gap_opens_when_gap_ends() -> None:
    # New York, Sunday 2026-03-08: clocks jump 02:00 EST -> 03:00 EDT, so 02:30 never happens.
    window = SendWindow(hours=BusinessHours(days={6: [rng("02:30", "05:00")]}), tz=NY)
    result = next_send_time(window, local(NY, 2026, 3, 8, 0, 0))
    assert result == utc(2026, 3, 8, 7, 0)  # the transition instant, 03:00 EDT
    assert result.astimezone(ZoneInfo(NY)).time() == time(3, 0)


def test_range_entirely_inside_spring_forward_gap_does_not_exist_that_day() -> None:
    window = SendWindow(hours=BusinessHours(days={6: [rng("02:10", "02:50")]}), tz=NY)
    result = next_send_time(window, local(NY, 2026, 3, 8, 0, 0))
    assert result == local(NY, 2026, 3, 15, 2, 10)


def test_fall_back_range_start_in_fold_uses_first_occurrence() -> None:
    # New York, Sunday 2026-11-01: 01:00-02:00 happens twice (EDT, then EST).
    window = SendWindow(hours=BusinessHours(days={6: [rng("01:30", "03:00")]}), tz=NY)
    result = next_send_time(window, local(NY, 2026, 11, 1, 0, 0))
    assert result == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    # (Compare via UTC: Python never treats an aware datetime in a fold as equal to another zone's.)
    assert result == local(NY, 2026, 11, 1, 1, 30, fold=0).astimezone(UTC)
    # Open straight through the repeated hour, since every wall reading stays within 01:30-03:00...
    assert is_within_window(window, local(NY, 2026, 11, 1, 1, 59, fold=0))
    # ...except that the second pass from 01:00 to 01:30 reads earlier than the range start.
    assert not is_within_window(window, local(NY, 2026, 11, 1, 1, 15, fold=1))
    assert next_send_time(window, local(NY, 2026, 11, 1, 1, 15, fold=1)) == utc(2026, 11, 1, 6, 30)


def test_fall_back_range_reopens_for_the_repeated_hour() -> None:
    # The window is defined on the wall clock, so a range within the repeated hour occurs twice.
    window = SendWindow(hours=BusinessHours(days={6: [rng("01:00", "01:20")]}), tz=NY)
    after_first_pass = utc(2026, 11, 1, 5, 40)  # 01:40 EDT
    assert next_send_time(window, after_first_pass) == utc(2026, 11, 1, 6, 0)  # 01:00 EST


def test_lord_howe_half_hour_spring_forward() -> None:
    # Lord Howe jumps 02:00 -> 02:30 on 2026-10-04 (+10:30 -> +11:00).
    zone = "Australia/Lord_Howe"
    window = SendWindow(hours=BusinessHours(days={6: [rng("02:15", "04:00")]}), tz=zone)
    result = next_send_time(window, local(zone, 2026, 10, 4, 0, 0))
    assert result == utc(2026, 10, 3, 15, 30)
    assert result.astimezone(ZoneInfo(zone)).time() == time(2, 30)


def test_midnight_gap_sao_paulo() -> None:
    # Sao Paulo started DST at local midnight: 2018-11-04 00:00 -03 became 01:00 -02.
    zone = "America/Sao_Paulo"
    window = SendWindow(hours=BusinessHours(days={6: [rng("00:00", "06:00")]}), tz=zone)
    result = next_send_time(window, local(zone, 2018, 11, 3, 12, 0))
    assert result == utc(2018, 11, 4, 3, 0)
    assert result.astimezone(ZoneInfo(zone)) == local(zone, 2018, 11, 4, 1, 0)


def test_window_crossing_utc_midnight_kolkata() -> None:
    # 00:00-06:00 IST (UTC+05:30) is 18:30-00:30 UTC on the previous UTC day.
    zone = "Asia/Kolkata"
    hours = BusinessHours(days={d: [rng("00:00", "06:00")] for d in range(5)})
    window = SendWindow(hours=hours, tz=zone)
    sunday_evening_utc = utc(2026, 6, 7, 18, 0)  # Sunday 23:30 IST
    assert next_send_time(window, sunday_evening_utc) == utc(2026, 6, 7, 18, 30)  # Monday 00:00 IST
    assert is_within_window(window, utc(2026, 6, 8, 0, 15))  # Monday 05:45 IST, next UTC day
    assert next_send_time(window, utc(2026, 6, 8, 0, 30)) == utc(2026, 6, 8, 18, 30)  # Tuesday 00:00


def test_open_until_midnight_with_time_max() -> None:
    window = SendWindow(hours=hours_every_day(rng("20:00", "23:59:59.999999")), tz="UTC")
    assert is_within_window(window, utc(2026, 6, 10, 23, 59, 59))
    assert next_send_time(window, utc(2026, 6, 11, 0, 0)) == utc(2026, 6, 11, 20, 0)


def test_cap_full_today_defers_to_tomorrows_opening() -> None:
    window = SendWindow(tz="Europe/Berlin")
    now = local("Europe/Berlin", 2026, 6, 10, 11, 0)  # Wednesday
    used = {date(2026, 6, 10): 2}
    result = schedule_with_cap(window, now, DailyCap(limit=2), usage_lookup(used))
    assert result == local("Europe/Berlin", 2026, 6, 11, 9, 0)


def test_cap_counts_local_days_not_utc_days() -> None:
    # 18:45 UTC Tuesday is already Wednesday 00:15 in Kolkata; Wednesday is full there.
    zone = "Asia/Kolkata"
    window = SendWindow(hours=hours_every_day(rng("00:00", "23:59:59.999999")), tz=zone)
    used = {date(2026, 6, 10): 1}
    result = schedule_with_cap(window, utc(2026, 6, 9, 18, 45), DailyCap(limit=1), usage_lookup(used))
    assert result == local(zone, 2026, 6, 11, 0, 0)


def test_cap_with_room_keeps_earliest() -> None:
    window = SendWindow(tz="UTC")
    at = utc(2026, 6, 10, 10, 0)
    assert schedule_with_cap(window, at, DailyCap(limit=3), usage_lookup({date(2026, 6, 10): 2})) == at


def test_cap_never_drops_over_long_full_stretch() -> None:
    window = SendWindow(tz="UTC")
    start = utc(2026, 6, 10, 10, 0)

    def full_for_a_month(day: date) -> int:
        return 5 if day < date(2026, 7, 10) else 0

    assert schedule_with_cap(window, start, DailyCap(limit=5), full_for_a_month) == utc(2026, 7, 10, 9, 0)


def test_cap_always_full_raises_after_horizon() -> None:
    window = SendWindow(tz="UTC")
    with pytest.raises(NoSendWindowError):
        schedule_with_cap(window, utc(2026, 6, 10, 10, 0), DailyCap(limit=1), lambda _: 1)


def test_week_without_hours_raises() -> None:
    window = SendWindow(hours=BusinessHours(days={}), tz="UTC")
    with pytest.raises(NoSendWindowError):
        next_send_time(window, utc(2026, 6, 10))


def test_holidays_covering_the_horizon_raise() -> None:
    start = date(2026, 1, 1)
    holidays = tuple(start + timedelta(days=n) for n in range(MAX_SEARCH_DAYS + 2))
    window = SendWindow(hours=hours_every_day(rng("09:00", "10:00"), holidays=holidays), tz="UTC")
    with pytest.raises(NoSendWindowError):
        next_send_time(window, utc(2026, 1, 1))
    # One day fewer of holidays and the window opens right at the horizon's edge.
    shorter = SendWindow(hours=hours_every_day(rng("00:00", "10:00"), holidays=holidays[:-2]), tz="UTC")
    assert next_send_time(shorter, utc(2026, 1, 1)) == utc(2027, 2, 5)


def test_naive_datetimes_are_rejected() -> None:
    window = SendWindow(tz="UTC")
    with pytest.raises(ValueError, match="timezone-aware"):
        next_send_time(window, datetime(2026, 1, 1, 10, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        is_within_window(window, datetime(2026, 1, 1, 10, 0))


def test_negative_delay_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        wait_until(SendWindow(tz="UTC"), utc(2026, 1, 1), timedelta(seconds=-1), align_to_window=False)


# --- model validation ----------------------------------------------------------------------------


def test_default_business_hours() -> None:
    hours = BusinessHours.default()
    assert [len(day) for day in hours.days] == [1, 1, 1, 1, 1, 0, 0]
    assert hours.days[0] == (rng("09:00", "18:00"),)
    assert hours.holidays == ()


def test_business_hours_accepts_json_mapping_and_round_trips() -> None:
    hours = BusinessHours.model_validate_json(
        '{"days": {"0": [{"start": "14:00", "end": "18:00"}, {"start": "09:00", "end": "12:00"}]},'
        ' "holidays": ["2026-01-02", "2026-01-01", "2026-01-02"]}'
    )
    assert hours.days[0] == (rng("09:00", "12:00"), rng("14:00", "18:00"))  # sorted
    assert hours.days[1:] == ((),) * 6
    assert hours.holidays == (date(2026, 1, 1), date(2026, 1, 2))  # sorted, de-duplicated
    assert BusinessHours.model_validate_json(hours.model_dump_json()) == hours
    assert hash(hours) == hash(BusinessHours.model_validate(hours.model_dump()))


@pytest.mark.parametrize(
    ("start", "end"),
    [("10:00", "09:00"), ("10:00", "10:00"), ("22:00", "02:00")],
)
def test_time_range_rejects_empty_and_overnight(start: str, end: str) -> None:
    with pytest.raises(ValidationError, match="after its start"):
        rng(start, end)


def test_time_range_rejects_aware_times() -> None:
    with pytest.raises(ValidationError, match="naive"):
        TimeRange(start=time(9, tzinfo=UTC), end=time(10, tzinfo=UTC))


def test_overlapping_ranges_are_rejected() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        BusinessHours(days={2: [rng("09:00", "12:00"), rng("11:00", "13:00")]})
    # Touching ranges are fine: [09:00, 12:00) and [12:00, 13:00) share no instant.
    BusinessHours(days={2: [rng("09:00", "12:00"), rng("12:00", "13:00")]})


@pytest.mark.parametrize("key", [7, -1, "Mon", True, 1.0])
def test_bad_weekday_keys_are_rejected(key: object) -> None:
    with pytest.raises(ValidationError):
        BusinessHours(days={key: [rng("09:00", "10:00")]})


def test_days_must_have_seven_entries() -> None:
    with pytest.raises(ValidationError, match="7"):
        BusinessHours(days=((rng("09:00", "10:00"),),))


def test_models_are_frozen() -> None:
    window = SendWindow(tz="UTC")
    with pytest.raises(ValidationError):
        window.tz = "Europe/Berlin"  # type: ignore[misc]


@pytest.mark.parametrize(
    "name",
    ["Mars/Olympus", "", "utc", "America", "../etc/passwd", "/etc/localtime", "localtime", "right/UTC", "zone.tab"],
)
def test_unknown_time_zones_are_rejected(name: str) -> None:
    assert not is_valid_time_zone(name)
    with pytest.raises(ValueError, match="unknown time zone"):
        SendWindow(tz=name)


@pytest.mark.parametrize(
    ("lead_tz", "org_tz", "expected"),
    [
        ("Asia/Kolkata", "Europe/Moscow", "Asia/Kolkata"),
        (" Asia/Kolkata ", "Europe/Moscow", "Asia/Kolkata"),
        (None, "Europe/Moscow", "Europe/Moscow"),
        ("", "Europe/Moscow", "Europe/Moscow"),
        ("GMT+3 Moscow", "Europe/Moscow", "Europe/Moscow"),
    ],
)
def test_resolve_time_zone(lead_tz: str | None, org_tz: str, expected: str) -> None:
    assert resolve_time_zone(lead_tz, org_tz) == expected


def test_resolve_time_zone_rejects_invalid_org_zone() -> None:
    with pytest.raises(ValueError, match="organisation"):
        resolve_time_zone(None, "Nowhere/Special")


def test_daily_cap_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        DailyCap(limit=0)


def test_pause_shift_examples() -> None:
    paused, resumed = utc(2026, 1, 1, 12), utc(2026, 1, 3, 12)
    # Two days of a three-day wait remained; they still remain after the two-day pause.
    assert pause_shift(utc(2026, 1, 3, 12), paused, resumed) == utc(2026, 1, 5, 12)
    # Already overdue when paused: due on resume, not in the past.
    assert pause_shift(utc(2026, 1, 1, 6), paused, resumed) == resumed
    with pytest.raises(ValueError, match="before"):
        pause_shift(utc(2026, 1, 3), resumed, paused)


def test_usage_lookup_defaults_to_zero() -> None:
    lookup: Callable[[date], int] = usage_lookup({date(2026, 1, 1): 3})
    assert lookup(date(2026, 1, 1)) == 3
    assert lookup(date(2026, 1, 2)) == 0
