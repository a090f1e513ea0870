"""Dashboard and analytics: periods in the organisation's zone, filters checked, figures from the repository."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import BadRequest, NotFound
from api.schemas.analytics import (
    AnalyticsRead,
    AnalyticsTotals,
    ChartsRead,
    ConversationStats,
    DashboardRead,
    PeriodRead,
    SequenceStats,
    StepStats,
    UpdateRead,
    UpdatesRead,
)
from db.models import EnrollmentStatus
from db.repositories.activity import ActivityRepository
from db.repositories.agents import AgentRepository
from db.repositories.analytics import AnalyticsRepository, EnrollmentRow, SendRow
from db.repositories.sequences import SequenceRepository
from domain.analytics import Period, PeriodError, day_start, local_days, period, rate

LIVE = {EnrollmentStatus.pending.value, EnrollmentStatus.active.value, EnrollmentStatus.paused.value}
# The feed shows events this old at the earliest: a transaction that started earlier may still commit rows
# stamped before the newest visible one, and a cursor past them would skip them for good.
SETTLE = timedelta(seconds=5)
FIRST_LOOK = timedelta(hours=24)
POLL_AFTER_SECONDS = 5
EXPORT_COLUMNS = ("sequence_id", "sequence", "agent_id", "step_id", "kind", "variant", "sent", "replied",
                  "reply_rate")


def encode_position(at: datetime, kind: str, row_id: uuid.UUID) -> str:
    """The feed cursor: just after this event."""
    raw = json.dumps([at.isoformat(), kind, str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(cursor: str) -> tuple[datetime, str, uuid.UUID]:
    """Inverse of :func:`encode_position`; 400 on anything we did not issue."""
    try:
        at, kind, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(kind, str):
            raise ValueError("naive time or bad kind")
        return moment, kind, uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadRequest("The cursor is not one this feed issued.") from exc


def _spreadsheet_safe(value: str) -> str:
    # A cell starting with = + - @ is a formula to Excel and LibreOffice: names are user-written.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class AnalyticsService:
    """Reports of one organisation."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id
        self.repo = AnalyticsRepository(session, org_id)

    async def _zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(await self.repo.time_zone())
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    async def _period(self, first: date | None, last: date | None, zone: ZoneInfo) -> Period:
        try:
            return period(first, last, zone, datetime.now(UTC).astimezone(zone).date())
        except PeriodError as exc:
            raise BadRequest(str(exc)) from exc

    async def _check_filters(self, agent_id: uuid.UUID | None, sequence_id: uuid.UUID | None) -> None:
        # Another organisation's id answers exactly like a missing one.
        if agent_id is not None and await AgentRepository(self.session, self.org_id).get(agent_id) is None:
            raise NotFound("Agent not found.")
        if sequence_id is not None and await SequenceRepository(self.session, self.org_id).get(
                sequence_id, agent_id, include_archived=True) is None:
            raise NotFound("Sequence not found.")

    async def analytics(
        self, *, first: date | None, last: date | None, agent_id: uuid.UUID | None, sequence_id: uuid.UUID | None,
        reply_window_hours: int,
    ) -> AnalyticsRead:
        """Sequence performance per step and variant, and conversation activity, over local days."""
        await self._check_filters(agent_id, sequence_id)
        zone = await self._zone()
        span = await self._period(first, last, zone)
        window = timedelta(hours=reply_window_hours)
        sends = await self.repo.sends(span.start, span.end, window, agent_id=agent_id, sequence_id=sequence_id)
        enrollments = await self.repo.enrollments(span.start, span.end, agent_id=agent_id, sequence_id=sequence_id)
        names = await self.repo.sequence_names(agent_id)
        sequences = _sequence_stats(names, sends, enrollments, sequence_id)
        conversations = await self.repo.conversation_counts(span.start, span.end, agent_id=agent_id)
        sent, replied = sum(s.messages_sent for s in sequences), sum(s.replied for s in sequences)
        return AnalyticsRead(
            period=PeriodRead(first_day=span.first_day, last_day=span.last_day, time_zone=zone.key),
            reply_window_hours=reply_window_hours,
            totals=AnalyticsTotals(enrolled=sum(s.enrolled for s in sequences), messages_sent=sent,
                                   replied=replied, reply_rate=rate(replied, sent)),
            sequences=sequences,
            conversations=ConversationStats(**conversations),
        )

    async def export_csv(
        self, *, first: date | None, last: date | None, agent_id: uuid.UUID | None, sequence_id: uuid.UUID | None,
        reply_window_hours: int,
    ) -> tuple[str, str]:
        """The analytics' step rows as CSV, and a file name for it."""
        report = await self.analytics(first=first, last=last, agent_id=agent_id, sequence_id=sequence_id,
                                      reply_window_hours=reply_window_hours)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        for sequence in report.sequences:
            for step in sequence.steps:
                writer.writerow([sequence.sequence_id, _spreadsheet_safe(sequence.name), sequence.agent_id,
                                 _spreadsheet_safe(step.step_id), step.kind, _spreadsheet_safe(step.variant or ""),
                                 step.sent, step.replied, "" if step.reply_rate is None else step.reply_rate])
        name = f"salesflow-analytics-{report.period.first_day}-{report.period.last_day}.csv"
        return out.getvalue(), name

    async def dashboard(self) -> DashboardRead:
        """Headline figures now, and today's traffic."""
        zone = await self._zone()
        today = datetime.now(UTC).astimezone(zone).date()
        figures = await self.repo.now(day_start(today, zone), day_start(today + timedelta(days=1), zone))
        return DashboardRead(time_zone=zone.key, today=today, agents=figures["agents"], leads=figures["leads"],
                             enrollments=figures["enrollments"], conversations=figures["conversations"],
                             traffic_today=figures["today"])

    async def updates(self, user_id: uuid.UUID, cursor: str | None, limit: int) -> UpdatesRead:
        """Events after ``cursor`` (the last day's newest without one), oldest first, and the next cursor."""
        feed = ActivityRepository(self.session, self.org_id)
        until = datetime.now(UTC) - SETTLE
        if cursor:
            position = decode_position(cursor)
            rows = await feed.after(user_id, position, until, limit)
        else:
            position = (until, "", uuid.UUID(int=0))
            rows = await feed.latest(user_id, until - FIRST_LOOK, until, limit)
        if rows:
            position = (rows[-1].at, rows[-1].kind, rows[-1].id)
        return UpdatesRead(
            items=[UpdateRead(at=r.at, kind=r.kind, id=r.id, lead_id=r.lead_id, agent_id=r.agent_id, summary=r.summary)
                   for r in rows],
            cursor=encode_position(*position), poll_after_seconds=POLL_AFTER_SECONDS)

    async def charts(self, *, first: date | None, last: date | None, agent_id: uuid.UUID | None) -> ChartsRead:
        """Daily series (local days, zero-filled) over the period."""
        await self._check_filters(agent_id, None)
        zone = await self._zone()
        span = await self._period(first, last, zone)
        daily = await self.repo.daily(zone.key, span.start, span.end, agent_id=agent_id)
        days = local_days(span.first_day, span.last_day)
        return ChartsRead(period=PeriodRead(first_day=span.first_day, last_day=span.last_day, time_zone=zone.key),
                          days=days, series={name: [counts.get(d, 0) for d in days] for name, counts in daily.items()})


def _sequence_stats(
    names: dict[uuid.UUID, tuple[str, uuid.UUID]], sends: list[SendRow], enrollments: list[EnrollmentRow],
    only: uuid.UUID | None,
) -> list[SequenceStats]:
    by_sequence: dict[uuid.UUID, list[SendRow]] = defaultdict(list)
    for send in sends:
        by_sequence[send.sequence_id].append(send)
    states: dict[uuid.UUID, list[EnrollmentRow]] = defaultdict(list)
    for state in enrollments:
        states[state.sequence_id].append(state)
    stats = []
    for sequence_id in sorted(set(by_sequence) | set(states), key=lambda s: (names.get(s, ("", s))[0], str(s))):
        if sequence_id not in names or (only is not None and sequence_id != only):
            continue
        name, agent_id = names[sequence_id]
        rows, counts = by_sequence[sequence_id], states[sequence_id]
        exited: dict[str, int] = defaultdict(int)
        for state in counts:
            if state.status == EnrollmentStatus.exited.value:
                exited[state.exit_reason or "unknown"] += state.count
        sent, replied = sum(r.sent for r in rows), sum(r.replied for r in rows)
        stats.append(SequenceStats(
            sequence_id=sequence_id, name=name, agent_id=agent_id, enrolled=sum(r.count for r in counts),
            live=sum(r.count for r in counts if r.status in LIVE),
            completed=sum(r.count for r in counts if r.status == EnrollmentStatus.completed.value),
            exited=dict(sorted(exited.items())),
            cancelled=sum(r.count for r in counts if r.status == EnrollmentStatus.cancelled.value),
            failed=sum(r.count for r in counts if r.status == EnrollmentStatus.failed.value),
            messages_sent=sent, replied=replied, reply_rate=rate(replied, sent),
            steps=[StepStats(step_id=r.step_id, kind=r.kind, variant=r.variant, sent=r.sent, replied=r.replied,
                             reply_rate=rate(r.replied, r.sent)) for r in rows],
        ))
    return stats
