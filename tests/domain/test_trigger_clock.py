"""The trigger clock's keys and silences (pure): examples for the calendar edges, Hypothesis for the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.trigger_clock import (
    EVERY,
    Every,
    clock_events,
    is_silent,
    schedule_event_key,
    schedule_period_key,
    silence,
)
from domain.triggers import TriggerEventType

ZONES = [UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"),
         ZoneInfo("Pacific/Chatham")]
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.sampled_from(ZONES), allow_imaginary=False)
# Python adds a timedelta to a zoned time on the wall clock (a DST day is not 24 h long): arithmetic
# on instants is done in UTC, and other zones only re-express the results.
instants = moments.map(lambda moment: moment.astimezone(UTC))
everies = st.sampled_from(EVERY)
gaps = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))


def period_start(every: Every, moment: datetime) -> datetime:
    """Oracle: the first instant of the UTC hour, day or ISO week (Monday) containing ``moment``."""
    t = moment.astimezone(UTC)
    if every == "hourly":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if every == "daily" else day - timedelta(days=t.weekday())


def test_period_keys_name_the_utc_hour_day_and_iso_week() -> None:
    evening = datetime(2026, 11, 27, 19, 30, tzinfo=UTC)
    assert [schedule_period_key(e, evening) for e in EVERY] == ["hourly:2026-11-27T19", "daily:2026-11-27",
                                                                 "weekly:2026-W48"]
    # 00:30 in Berlin is still the previous UTC day and hour.
    berlin = datetime(2026, 11, 28, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert schedule_period_key("daily", berlin) == "daily:2026-11-27"
    assert schedule_period_key("hourly", berlin) == "hourly:2026-11-27T23"
    # ISO weeks straddle New Year: 1 January 2027 is a Friday of 2026's week 53.
    assert schedule_period_key("weekly", datetime(2027, 1, 1, 12, tzinfo=UTC)) == "weekly:2026-W53"
    assert schedule_period_key("weekly", datetime(2027, 1, 4, 0, tzinfo=UTC)) == "weekly:2027-W01"
    assert schedule_event_key("daily", evening) == "clock:schedule:daily:2026-11-27"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule_period_key("daily", datetime(2026, 11, 27, 19))
    with pytest.raises(ValueError, match="timezone-aware"):
        silence(datetime(2026, 11, 27), None, datetime.now(UTC))


@settings(max_examples=300, deadline=None)
@given(everies, moments, st.sampled_from(ZONES))
def test_a_period_has_one_key_from_its_first_to_its_last_instant_in_any_zone(
    every: Every, moment: datetime, zone: ZoneInfo
) -> None:
    start = period_start(every, moment)
    key = schedule_period_key(every, moment)
    assert schedule_period_key(every, moment.astimezone(zone)) == key
    assert schedule_period_key(every, start) == key
    assert schedule_period_key(every, start - timedelta(microseconds=1)) != key


@settings(max_examples=300, deadline=None)
@given(everies, instants, gaps)
def test_keys_sort_like_the_periods_they_name(every: Every, moment: datetime, gap: timedelta) -> None:
    earlier, later = schedule_period_key(every, moment), schedule_period_key(every, moment + gap)
    assert earlier <= later
    assert (earlier == later) == (period_start(every, moment) == period_start(every, moment + gap))


@settings(max_examples=100, deadline=None)
@given(everies, moments, st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=1)))
def test_hourly_ticks_yield_exactly_one_key_per_period(every: Every, moment: datetime, offset: timedelta) -> None:
    # A week of hourly ticks at a fixed offset into the hour, as the schedule produces them.
    first = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + offset
    ticks = [first + timedelta(hours=i) for i in range(24 * 7)]
    keys = [schedule_event_key(every, tick) for tick in ticks]
    periods = {period_start(every, tick) for tick in ticks}
    assert len(set(keys)) == len(periods)
    # Each key belongs to one run of consecutive ticks: a period never fires again after it ended.
    assert [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k] == sorted(set(keys))


@settings(max_examples=300, deadline=None)
@given(instants, gaps, gaps, st.one_of(st.none(), gaps), st.integers(min_value=1, max_value=24 * 365),
       st.sampled_from(ZONES))
def test_a_silence_is_an_unanswered_last_message_keyed_by_when_we_sent_it(
    contacted: datetime, waited: timedelta, later: timedelta, replied_before: timedelta | None, hours: int,
    zone: ZoneInfo,
) -> None:
    replied = None if replied_before is None else contacted - replied_before - timedelta(microseconds=1)
    now = contacted + waited
    current = silence(contacted, replied, now)
    assert current is not None
    assert current.since == contacted
    assert current.hours_without_reply == pytest.approx(waited.total_seconds() / 3600)
    assert is_silent(contacted, replied, now, hours) == (waited >= timedelta(hours=hours))
    # The same silence keeps its key while it lasts, whatever zone the times are read in.
    still = silence(contacted.astimezone(zone), replied, now + later)
    assert still is not None
    assert still.event_key == current.event_key
    assert still.hours_without_reply >= current.hours_without_reply
    assert is_silent(contacted, replied, now + later, hours) or not is_silent(contacted, replied, now, hours)


@settings(max_examples=300, deadline=None)
@given(instants, gaps, gaps)
def test_a_reply_ends_the_silence_and_our_next_message_starts_a_new_one(
    contacted: datetime, reply_after: timedelta, next_after: timedelta
) -> None:
    replied = contacted + reply_after
    now = replied + timedelta(days=30)
    assert silence(contacted, replied, now) is None
    assert not is_silent(contacted, replied, now, 1)
    assert silence(None, None, now) is None
    # We write again after the reply: a new silence, with a key of its own.
    again = replied + next_after + timedelta(microseconds=1)
    first = silence(contacted, None, again)
    second = silence(again, replied, again + timedelta(hours=25))
    assert first is not None
    assert second is not None
    assert second.event_key != first.event_key
    assert is_silent(again, replied, again + timedelta(hours=25), 24)


@settings(max_examples=300, deadline=None)
@given(instants, st.sets(everies), st.lists(st.integers(min_value=1, max_value=24 * 30), max_size=4),
       st.one_of(st.none(), gaps), st.booleans())
def test_clock_events_are_one_per_period_kind_plus_one_for_a_long_enough_silence(
    now: datetime, schedules: set[Every], thresholds: list[int], contacted_ago: timedelta | None, replied: bool
) -> None:
    contacted = None if contacted_ago is None else now - contacted_ago
    replied_at = contacted + timedelta(minutes=1) if contacted is not None and replied else None
    events = clock_events(now, schedules=schedules, no_reply_hours=thresholds, last_contacted_at=contacted,
                          last_replied_at=replied_at)
    periodic = [e for e in events if e.type == TriggerEventType.schedule]
    assert {e.every for e in periodic} == schedules
    assert all(e.every is not None and e.event_key == schedule_event_key(e.every, now) for e in periodic)
    no_reply = [e for e in events if e.type == TriggerEventType.no_reply_for_hours]
    due = bool(thresholds) and is_silent(contacted, replied_at, now, min(thresholds or [0]))
    assert len(no_reply) == (1 if due else 0)
    for event in no_reply:
        current = silence(contacted, replied_at, now)
        assert current is not None
        assert (event.event_key, event.hours_without_reply) == (current.event_key, current.hours_without_reply)
    assert len({e.event_key for e in events}) == len(events)
