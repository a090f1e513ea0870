"""Benchmark: the dashboard and analytics endpoints over a large organisation.

Seeds one organisation in a fresh embedded PostgreSQL (or ``DATABASE_URL``) with N leads, each enrolled in
an A/B sequence, two sends per enrolment spread over the last 30 days, a conversation per lead and a reply
from 60 % of the leads; then calls every report through the real app (in process, over ASGI) and prints
rows seeded, seed time, and p50/p99 per endpoint.

    .venv/bin/python bench/analytics_report.py --leads 50000 --calls 20

Prints figures; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from api.app import create_app  # noqa: E402
from api.schemas.sequences import SequenceCreate  # noqa: E402
from api.security import AccessClaims, issue_access_token  # noqa: E402
from api.services.sequences import SequenceService  # noqa: E402
from db.migrate import upgrade_async  # noqa: E402
from db.models import (  # noqa: E402
    Agent,
    AgentStatus,
    Conversation,
    ConversationChannel,
    Enrollment,
    EnrollmentStatus,
    EnrollmentStepLog,
    Lead,
    Membership,
    Message,
    MessageAuthor,
    MessageDirection,
    MessageStatus,
    Organization,
    Role,
    Sequence,
    User,
)
from db.session import create_engine, create_sessionmaker  # noqa: E402
from salesflow.settings import Settings  # noqa: E402
from salesflow.stack import EmbeddedPostgres, free_port  # noqa: E402

STEPS = [
    {"type": "send_message", "id": "hello", "variants": [{"id": "a", "text": "Hi!"}, {"id": "b", "text": "Hello!"}],
     "next": "gap"},
    {"type": "wait", "id": "gap", "duration": "P2D", "next": "nudge"},
    {"type": "send_message", "id": "nudge", "text": "Any questions?"},
]
BATCH = 5_000
ENDPOINTS = ("/api/dashboard", "/api/dashboard/charts", "/api/analytics", "/api/analytics/export")


async def _insert(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        await session.execute(insert(model), rows[start:start + BATCH])


async def seed(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, leads: int
) -> tuple[dict[str, str], int]:
    """The organisation and its history; returns auth headers and the number of rows written."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    async with sessions() as session:
        org = Organization(name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}", time_zone="Europe/Berlin")
        user = User(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
        session.add_all([org, user])
        await session.flush()
        agent = Agent(org_id=org.id, name="Bench agent", status=AgentStatus.active)
        session.add_all([Membership(org_id=org.id, user_id=user.id, role=Role.owner), agent])
        await session.flush()
        created = await SequenceService(session, org.id).create(agent.id, SequenceCreate.model_validate(
            {"name": "Bench sequence", "steps": STEPS, "send_window": {"any_time": True}}))
        sequence = await session.get(Sequence, created.id)
        assert sequence is not None
        assert sequence.current_version_id is not None
        lead_rows, enrolment_rows, log_rows, conversation_rows, message_rows = [], [], [], [], []
        statuses = [EnrollmentStatus.active, EnrollmentStatus.completed, EnrollmentStatus.exited]
        for i in range(leads):
            lead_id, enrolment_id, conversation_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            first = now - timedelta(days=rng.uniform(3, 30))
            second = first + timedelta(days=2)
            status = statuses[i % 3]
            lead_rows.append({"id": lead_id, "org_id": org.id, "kommo_id": 50_000_000 + i, "name": f"Lead {i}",
                              "tags": [], "field_values": {}, "opted_out": False})
            enrolment_rows.append({
                "id": enrolment_id, "org_id": org.id, "sequence_id": sequence.id,
                "version_id": sequence.current_version_id, "agent_id": agent.id, "lead_id": lead_id,
                "status": status, "workflow_id": f"bench/{i}", "created_at": first - timedelta(minutes=5),
                "exit_reason": "replied" if status == EnrollmentStatus.exited else None})
            for step, at, variant in (("hello", first, "ab"[i % 2]), ("nudge", second, None)):
                log_rows.append({"id": uuid.uuid4(), "org_id": org.id, "enrollment_id": enrolment_id, "step_id": step,
                                 "step_key": f"bench:{enrolment_id}:{step}", "kind": "send_message",
                                 "channel": "kommo_chat", "outcome": "sent", "sent_at": at,
                                 "payload": {"variant": variant} if variant else {}})
            conversation_rows.append({"id": conversation_id, "org_id": org.id, "key": f"lead:{lead_id}",
                                      "lead_id": lead_id, "agent_id": agent.id,
                                      "channel": ConversationChannel.kommo_chat})
            if rng.random() < 0.6:
                message_rows.append({
                    "id": uuid.uuid4(), "org_id": org.id, "conversation_id": conversation_id,
                    "direction": MessageDirection.inbound, "author": MessageAuthor.lead,
                    "channel": ConversationChannel.kommo_chat, "status": MessageStatus.received, "text": "Tell me more",
                    "external_id": f"bench:{conversation_id}", "meta": {},
                    "created_at": first + timedelta(hours=rng.uniform(0.1, 72))})
        for model, rows in ((Lead, lead_rows), (Enrollment, enrolment_rows), (EnrollmentStepLog, log_rows),
                            (Conversation, conversation_rows), (Message, message_rows)):
            await _insert(session, model, rows)
        await session.commit()
        token = issue_access_token(AccessClaims(user.id, org.id, Role.owner.value), settings.jwt_secret, 3600)
    written = len(lead_rows) + len(enrolment_rows) + len(log_rows) + len(conversation_rows) + len(message_rows)
    return {"Authorization": f"Bearer {token}"}, written


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="salesflow-bench-"))
    database_url = os.environ.get("DATABASE_URL")
    postgres = None
    if database_url is None:
        postgres = EmbeddedPostgres(tmp / "pg", free_port())
        await asyncio.to_thread(postgres.start)
        database_url = postgres.url
    try:
        await upgrade_async(database_url)
        settings = Settings(database_url=database_url, data_dir=tmp, log_level="WARNING")
        engine = create_engine(database_url)
        sessions = create_sessionmaker(engine)
        started = time.perf_counter()
        headers, written = await seed(sessions, settings, args.leads)
        async with engine.begin() as connection:
            await connection.exec_driver_sql("ANALYZE")
        print(f"seeded {args.leads} leads = {written} rows in {time.perf_counter() - started:.1f} s; "
              f"{os.cpu_count()} CPUs", flush=True)
        app = create_app(settings, sessions=sessions)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                     headers=headers, timeout=120) as client:
            for path in ENDPOINTS:
                timings = []
                for _ in range(args.calls):
                    t = time.perf_counter()
                    response = await client.get(path)
                    timings.append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200, response.text
                timings.sort()
                p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
                print(f"{path:<24} p50 {statistics.median(timings):7.1f} ms   p99 {p99:7.1f} ms   "
                      f"({args.calls} calls, {len(response.content)} bytes)", flush=True)
            body = (await client.get("/api/analytics")).json()
            print(f"check: {body['totals']}", flush=True)
        await engine.dispose()
    finally:
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=50_000, help="leads (one enrolment, two sends each)")
    parser.add_argument("--calls", type=int, default=20, help="calls per endpoint")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
