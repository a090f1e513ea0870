"""GET /api/analytics (+ /export) and /api/dashboard (+ /charts): figures counted from real rows in PostgreSQL."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import (
    Conversation,
    ConversationChannel,
    ConversationStatus,
    Enrollment,
    EnrollmentStatus,
    EnrollmentStepLog,
    Lead,
    Message,
    MessageAuthor,
    MessageDirection,
    MessageStatus,
    Notification,
    Organization,
    Sequence,
)
from tests.harness import Tenant
from tests.sequence_support import make_agent, make_lead, make_sequence, write_enrollments

Sessions = async_sessionmaker[AsyncSession]
OPERATIONS = ("/api/analytics", "/api/analytics/export", "/api/dashboard", "/api/dashboard/charts",
              "/api/dashboard/updates")
STEPS = [
    {"type": "send_message", "id": "hello", "variants": [{"id": "a", "text": "Hi!"}, {"id": "b", "text": "Hello!"}],
     "next": "nudge"},
    {"type": "send_message", "id": "nudge", "text": "Any questions?"},
]


async def _enrolment(sessions: Sessions, org_id: uuid.UUID, sequence_id: uuid.UUID, lead: Lead,
                     status: EnrollmentStatus, exit_reason: str | None = None) -> uuid.UUID:
    [outcome] = await write_enrollments(sessions, org_id, sequence_id, [lead])
    assert outcome.enrollment_id is not None
    async with sessions() as session:
        await session.execute(update(Enrollment).where(Enrollment.id == outcome.enrollment_id)
                              .values(status=status, exit_reason=exit_reason))
        await session.commit()
    return outcome.enrollment_id


async def _sent(sessions: Sessions, org_id: uuid.UUID, enrollment_id: uuid.UUID, step: str, at: datetime,
                variant: str | None = None) -> None:
    async with sessions() as session:
        session.add(EnrollmentStepLog(
            org_id=org_id, enrollment_id=enrollment_id, step_id=step, step_key=f"test:{uuid.uuid4()}",
            kind="send_message", channel="kommo_chat", outcome="sent", sent_at=at,
            payload={"variant": variant} if variant else {}))
        await session.commit()


async def _lead_wrote(sessions: Sessions, org_id: uuid.UUID, lead: Lead, at: datetime,
                      author: MessageAuthor = MessageAuthor.lead, **fields: Any) -> uuid.UUID:
    """A message in the lead's conversation (created if needed) at ``at``; returns the conversation id."""
    async with sessions() as session:
        conversation_id = await session.scalar(select(Conversation.id).where(
            Conversation.org_id == org_id, Conversation.key == f"lead:{lead.id}"))
        if conversation_id is None:
            row = Conversation(org_id=org_id, key=f"lead:{lead.id}", lead_id=lead.id,
                               channel=ConversationChannel.kommo_chat)
            session.add(row)
            await session.flush()
            conversation_id = row.id
        inbound = author == MessageAuthor.lead
        values: dict[str, Any] = {
            "direction": MessageDirection.inbound if inbound else MessageDirection.outbound,
            "status": MessageStatus.received if inbound else MessageStatus.sent, **fields}
        session.add(Message(org_id=org_id, conversation_id=conversation_id, author=author,
                            channel=ConversationChannel.kommo_chat, text="hello",
                            external_id=f"test:{uuid.uuid4()}", created_at=at, **values))
        await session.commit()
        return conversation_id


@pytest.fixture
async def report(sessions: Sessions, tenant: Tenant) -> dict[str, Any]:
    """Three enrolments of one A/B sequence, five sends and three lead messages five days ago."""
    agent = await make_agent(sessions, tenant.org_id)
    sequence = await make_sequence(sessions, tenant.org_id, agent, STEPS, name="Spring offer")
    leads = [await make_lead(sessions, tenant.org_id, None, None, name=n) for n in ("A", "B", "C")]
    t0 = (datetime.now(UTC) - timedelta(days=5)).replace(microsecond=0)
    a = await _enrolment(sessions, tenant.org_id, sequence, leads[0], EnrollmentStatus.exited, "replied")
    b = await _enrolment(sessions, tenant.org_id, sequence, leads[1], EnrollmentStatus.active)
    c = await _enrolment(sessions, tenant.org_id, sequence, leads[2], EnrollmentStatus.completed)
    # A answers "hello" within two hours and never "nudge"; B answers "hello" after two days; C answers an
    # hour after "nudge", which followed "hello" by an hour: that reply is the nudge's, not the hello's.
    await _sent(sessions, tenant.org_id, a, "hello", t0, "a")
    await _lead_wrote(sessions, tenant.org_id, leads[0], t0 + timedelta(hours=2))
    await _sent(sessions, tenant.org_id, a, "nudge", t0 + timedelta(days=3))
    await _sent(sessions, tenant.org_id, b, "hello", t0, "b")
    await _lead_wrote(sessions, tenant.org_id, leads[1], t0 + timedelta(days=2))
    await _sent(sessions, tenant.org_id, c, "hello", t0, "a")
    await _sent(sessions, tenant.org_id, c, "nudge", t0 + timedelta(hours=1))
    await _lead_wrote(sessions, tenant.org_id, leads[2], t0 + timedelta(hours=2))
    return {"agent": agent, "sequence": sequence, "t0": t0}


def _steps(body: dict[str, Any]) -> dict[tuple[str, str | None], tuple[int, int]]:
    [sequence] = body["sequences"]
    return {(s["step_id"], s["variant"]): (s["sent"], s["replied"]) for s in sequence["steps"]}


async def test_analytics_credit_each_reply_to_the_send_it_answers_per_step_and_variant(
    client: httpx.AsyncClient, tenant: Tenant, report: dict[str, Any]
) -> None:
    day = await client.get("/api/analytics", params={"reply_window_hours": 24}, headers=tenant.headers)
    week = await client.get("/api/analytics", headers=tenant.headers)
    assert day.status_code == week.status_code == 200, (day.text, week.text)

    assert _steps(day.json()) == {("hello", "a"): (2, 1), ("hello", "b"): (1, 0), ("nudge", None): (2, 1)}
    # With the default week, B's answer two days later counts for its hello.
    assert _steps(week.json()) == {("hello", "a"): (2, 1), ("hello", "b"): (1, 1), ("nudge", None): (2, 1)}
    [sequence] = day.json()["sequences"]
    assert (sequence["name"], sequence["agent_id"], sequence["enrolled"]) == ("Spring offer", str(report["agent"]), 3)
    assert (sequence["live"], sequence["completed"], sequence["exited"]) == (1, 1, {"replied": 1})
    assert day.json()["totals"] == {"enrolled": 3, "messages_sent": 5, "replied": 2, "reply_rate": 0.4}
    assert day.json()["conversations"]["lead_messages"] == 3
    assert day.json()["conversations"]["conversations"] == 3

    filtered = await client.get("/api/analytics", params={"sequence_id": str(report["sequence"]),
                                                          "agent_id": str(report["agent"])}, headers=tenant.headers)
    assert _steps(filtered.json()) == _steps(week.json())
    before = await client.get("/api/analytics", params={"from": "2020-01-01", "to": "2020-01-31"},
                              headers=tenant.headers)
    assert before.json()["sequences"] == []
    assert before.json()["totals"]["reply_rate"] is None


async def test_export_is_the_same_rows_as_csv_with_formulas_neutralised(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, report: dict[str, Any]
) -> None:
    async with sessions() as session:
        await session.execute(update(Sequence).where(Sequence.id == report["sequence"])
                              .values(name='=HYPERLINK("http://evil","x")'))
        await session.commit()
    r = await client.get("/api/analytics/export", params={"reply_window_hours": 24}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"].startswith('attachment; filename="salesflow-analytics-')
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {(row["step_id"], row["variant"], row["sent"], row["replied"]) for row in rows} == {
        ("hello", "a", "2", "1"), ("hello", "b", "1", "0"), ("nudge", "", "2", "1")}
    assert {row["sequence"] for row in rows} == {"'=HYPERLINK(\"http://evil\",\"x\")"}


async def test_the_dashboard_shows_what_needs_attention_now_and_todays_traffic(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, report: dict[str, Any]
) -> None:
    lead = await make_lead(sessions, tenant.org_id, None, None, name="Today")
    conversation_id = await _lead_wrote(sessions, tenant.org_id, lead, datetime.now(UTC))
    await _lead_wrote(sessions, tenant.org_id, lead, datetime.now(UTC), author=MessageAuthor.agent,
                      status=MessageStatus.pending_approval)
    async with sessions() as session:
        await session.execute(update(Conversation).where(Conversation.id == conversation_id)
                              .values(status=ConversationStatus.handoff))
        await session.commit()

    r = await client.get("/api/dashboard", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["agents"] == {"draft": 0, "active": 1, "paused": 0}
    assert body["leads"] == {"total": 4, "opted_out": 0}
    assert body["enrollments"] == {"pending": 0, "active": 1, "paused": 0}
    assert body["conversations"] == {"active": 3, "handoff": 1, "awaiting_approval": 1}
    assert body["traffic_today"] == {"sequence_messages": 0, "lead_messages": 1, "agent_replies": 0}
    assert body["time_zone"] == "Europe/Berlin"


async def test_charts_are_zero_filled_local_days_of_the_organisations_zone(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, report: dict[str, Any]
) -> None:
    async with sessions() as session:
        await session.execute(update(Organization).where(Organization.id == tenant.org_id)
                              .values(time_zone="America/New_York"))
        await session.commit()
    new_york = ZoneInfo("America/New_York")
    t0: datetime = report["t0"]
    t0_day = t0.astimezone(new_york).date()
    first, last = t0_day - timedelta(days=2), t0_day + timedelta(days=4)
    r = await client.get("/api/dashboard/charts", params={"from": first.isoformat(), "to": last.isoformat()},
                         headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"] == {"first_day": first.isoformat(), "last_day": last.isoformat(),
                              "time_zone": "America/New_York"}
    assert body["days"] == [(first + timedelta(days=n)).isoformat() for n in range(7)]
    series = body["series"]
    assert sum(series["sequence_messages"]) == 5
    assert sum(series["lead_messages"]) == 3
    assert all(len(values) == 7 for values in series.values())
    # The nudge three days after t0 is counted on its New York day, whatever the UTC date.
    sends_by_day = dict(zip(body["days"], series["sequence_messages"], strict=True))
    assert sends_by_day[(t0 + timedelta(days=3)).astimezone(new_york).date().isoformat()] >= 1


async def test_reports_refuse_bad_periods_and_other_organisations_ids(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, other_tenant: Tenant, report: dict[str, Any]
) -> None:
    theirs = await make_agent(sessions, other_tenant.org_id)
    their_sequence = await make_sequence(sessions, other_tenant.org_id, theirs, STEPS)
    today = date.today()
    for path in OPERATIONS:
        assert (await client.get(path)).status_code == 401
    for path in ("/api/analytics", "/api/analytics/export", "/api/dashboard/charts"):
        for params in ({"from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat()},
                       {"from": "2024-01-01", "to": "2025-06-01"}, {"from": "yesterday"}, {"from": "0001-01-01"},
                       {"to": "9999-12-31"},
                       {"agent_id": "not-a-uuid"}):
            r = await client.get(path, params=params, headers=tenant.headers)
            assert r.status_code == 400, (path, params, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await client.get(path, params={"agent_id": str(theirs)}, headers=tenant.headers)
        assert r.status_code == 404, (path, r.text)
    for path in ("/api/analytics", "/api/analytics/export"):
        for params in ({"sequence_id": str(their_sequence)}, {"sequence_id": str(uuid.uuid4())},
                       {"sequence_id": str(report["sequence"]), "agent_id": str(await make_agent(
                           sessions, tenant.org_id))}):
            assert (await client.get(path, params=params, headers=tenant.headers)).status_code == 404, params
        assert (await client.get(path, params={"reply_window_hours": 0}, headers=tenant.headers)).status_code == 400


async def test_updates_feed_each_event_once_in_order_and_only_the_callers(
    client: httpx.AsyncClient, sessions: Sessions, tenant: Tenant, other_tenant: Tenant, member: Tenant
) -> None:
    now = datetime.now(UTC)
    agent = await make_agent(sessions, tenant.org_id)
    sequence = await make_sequence(sessions, tenant.org_id, agent, STEPS, name="Welcome")
    lead = await make_lead(sessions, tenant.org_id, None, None, name="Ann")
    enrolment = await _enrolment(sessions, tenant.org_id, sequence, lead, EnrollmentStatus.exited, "replied")
    async with sessions() as session:
        await session.execute(update(Enrollment).where(Enrollment.id == enrolment).values(
            created_at=now - timedelta(minutes=3), finished_at=now - timedelta(minutes=1)))
        session.add_all([
            Notification(org_id=tenant.org_id, kind="trigger", title="Ann is hot", body="",
                         created_at=now - timedelta(seconds=40)),
            Notification(org_id=tenant.org_id, user_id=member.user_id, kind="mention", title="Only for the member",
                         body="", created_at=now - timedelta(seconds=30)),
        ])
        await session.commit()
    await _lead_wrote(sessions, tenant.org_id, lead, now - timedelta(minutes=2))
    theirs = await make_lead(sessions, other_tenant.org_id, None, None, name="Theirs")
    await _lead_wrote(sessions, other_tenant.org_id, theirs, now - timedelta(minutes=2))

    first = await client.get("/api/dashboard/updates", headers=tenant.headers)
    assert first.status_code == 200, first.text
    assert [(i["kind"], i["summary"]) for i in first.json()["items"]] == [
        ("enrollment.started", "Welcome"), ("message.lead", "hello"), ("enrollment.ended", "Welcome: exited (replied)"),
        ("notification", "Ann is hot")]
    assert first.json()["poll_after_seconds"] == 5

    await _lead_wrote(sessions, tenant.org_id, lead, now - timedelta(seconds=20))
    second = await client.get("/api/dashboard/updates", params={"cursor": first.json()["cursor"]},
                              headers=tenant.headers)
    assert [i["kind"] for i in second.json()["items"]] == ["message.lead"]
    assert second.json()["items"][0]["lead_id"] == str(lead.id)
    third = await client.get("/api/dashboard/updates", params={"cursor": second.json()["cursor"]},
                             headers=tenant.headers)
    assert third.json() == {"items": [], "cursor": second.json()["cursor"], "poll_after_seconds": 5}

    paged = await client.get("/api/dashboard/updates", params={"limit": 2}, headers=tenant.headers)
    assert [i["kind"] for i in paged.json()["items"]] == ["notification", "message.lead"]  # the newest two
    for params in ({"cursor": "bm90LWEtY3Vyc29y"}, {"cursor": "!"}, {"limit": 0}):
        r = await client.get("/api/dashboard/updates", params=params, headers=tenant.headers)
        assert r.status_code == 400, (params, r.text)
    assert (await client.get("/api/dashboard/updates")).status_code == 401
