"""The trigger clock's arithmetic: which time-based trigger events are due for a lead at a tick. Pure.

CRM webhooks produce lead_added/status_changed/incoming_message; nothing outside produces
``schedule`` and ``no_reply_for_hours``, so an hourly tick (``workflows/trigger_clock.py``) derives them
from the clock and the lead's last message times. Each event carries an *event key*; the trigger
executions table allows one execution per (trigger, lead, key), so a key names exactly what must fire
once:

* a schedule period (``hourly:2026-11-27T19``, ``daily:2026-11-27``, ``weekly:2026-W48``, in UTC):
  every tick inside one period yields the same key, the first tick of the next period a new one;
* a silence, keyed by the time of our message the lead has not answered: the same silence keeps its
  key tick after tick (``hours_without_reply`` grows, so a 48 h trigger fires after a 24 h one), and a
  new outbound message starts a new silence with a new key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from domain.triggers import TriggerEventType

__all__ = [
    "EVERY",
    "ClockEvent",
    "Every",
    "Silence",
    "clock_events",
    "is_silent",
    "schedule_event_key",
    "schedule_period_key",
    "silence",
]

Every = Literal["hourly", "daily", "weekly"]
EVERY: tuple[Every, ...] = get_args(Every)

# Namespaces the clock's keys apart from CRM event keys in the same executions table.
_KEY_PREFIX = "clock"


def _utc(moment: datetime) -> datetime:
    # A naive time would silently be read in the machine's zone: refuse it instead.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the trigger clock needs timezone-aware datetimes")
    return moment.astimezone(UTC)


def schedule_period_key(every: Every, now: datetime) -> str:
    """The UTC period ``now`` falls in: ``hourly:2026-11-27T19``, ``daily:2026-11-27``, ``weekly:2026-W48``.

    Keys of later periods sort after keys of earlier ones (fixed-width fields, ISO weeks).
    """
    t = _utc(now)
    if every == "hourly":
        return f"hourly:{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}"
    if every == "daily":
        return f"daily:{t.year:04d}-{t.month:02d}-{t.day:02d}"
    iso = t.isocalendar()
    return f"weekly:{iso.year:04d}-W{iso.week:02d}"


def schedule_event_key(every: Every, now: datetime) -> str:
    """The executions-table key of the ``schedule`` event for ``every`` at ``now``."""
    return f"{_KEY_PREFIX}:schedule:{schedule_period_key(every, now)}"


@dataclass(frozen=True)
class Silence:
    """The lead has not answered our message of ``since`` for ``hours_without_reply`` hours."""

    since: datetime
    hours_without_reply: float
    event_key: str


def silence(last_contacted_at: datetime | None, last_replied_at: datetime | None, now: datetime) -> Silence | None:
    """The lead's current silence, or None when we never wrote, or it answered our last message.

    A reply at the very instant of our message counts as an answer: it cannot have been ignored.
    """
    if last_contacted_at is None:
        return None
    contacted = _utc(last_contacted_at)
    if last_replied_at is not None and _utc(last_replied_at) >= contacted:
        return None
    elapsed = _utc(now) - contacted
    if elapsed.total_seconds() < 0:
        return None
    # Microseconds are what PostgreSQL stores, so the key survives a round trip through the lead row.
    key = f"{_KEY_PREFIX}:no_reply:{contacted.isoformat(timespec='microseconds')}"
    return Silence(since=contacted, hours_without_reply=elapsed.total_seconds() / 3600, event_key=key)


def is_silent(
    last_contacted_at: datetime | None, last_replied_at: datetime | None, now: datetime, hours: float
) -> bool:
    """Whether the lead has left our last message unanswered for at least ``hours`` hours."""
    current = silence(last_contacted_at, last_replied_at, now)
    return current is not None and current.hours_without_reply >= hours


@dataclass(frozen=True)
class ClockEvent:
    """One time-based trigger event for one lead at one tick, with the key that makes it fire once."""

    type: TriggerEventType
    event_key: str
    hours_without_reply: float | None = None
    every: Every | None = None


def clock_events(
    now: datetime,
    *,
    schedules: Iterable[Every],
    no_reply_hours: Iterable[float],
    last_contacted_at: datetime | None,
    last_replied_at: datetime | None,
) -> list[ClockEvent]:
    """The events due for a lead at ``now``, given what the armed triggers wait for.

    ``schedules`` are the periods of armed ``schedule`` triggers; ``no_reply_hours`` the thresholds of
    armed ``no_reply_for_hours`` triggers. One no-reply event carries the actual silence, since the
    matcher fires every trigger whose threshold it reaches.
    """
    events = [ClockEvent(type=TriggerEventType.schedule, event_key=schedule_event_key(every, now), every=every)
              for every in sorted(set(schedules), key=EVERY.index)]
    thresholds = list(no_reply_hours)
    current = silence(last_contacted_at, last_replied_at, now)
    if thresholds and current is not None and current.hours_without_reply >= min(thresholds):
        events.append(ClockEvent(type=TriggerEventType.no_reply_for_hours, event_key=current.event_key,
                                 hours_without_reply=current.hours_without_reply))
    return events
