"""Benchmark: enrol N leads in a 3-step sequence and run it to the end, next to a bare workflow baseline.

By default it starts embedded PostgreSQL and the Temporal dev server (SQLite file, WAL) on free ports
in a temporary directory; with ``DATABASE_URL`` and ``TEMPORAL_ADDRESS`` set it uses those instead.
In one process it runs our real worker (every workflow and activity, chat sends going to an
in-process Kommo sandbox) and the real API (in-process ASGI), then measures, on the same server:

1. sequence fan-out: one ``POST .../enrollments`` with N lead ids (handed to BulkEnrollmentWorkflow),
   each enrolment running send -> wait 1 s -> send. Reports enrolments/s (until every enrolment's
   workflow has begun), steps executed/s (until every enrolment completed) and history events per
   step (sampled);
2. baseline: N bare "timer (1 s) + one no-op activity" workflows started with 50 in flight; reports
   workflows started/s, completed/s and history events per workflow.

    .venv/bin/python bench/sequence_fanout.py --leads 1000

Prints figures; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402
from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from api.app import create_app  # noqa: E402
from api.security import AccessClaims, issue_access_token  # noqa: E402
from db.migrate import upgrade_async  # noqa: E402
from db.models import (  # noqa: E402
    Agent,
    AgentStatus,
    ConnectionStatus,
    Enrollment,
    EnrollmentStatus,
    KommoConnection,
    Lead,
    Membership,
    Organization,
    Role,
    User,
)
from db.session import create_engine, create_sessionmaker  # noqa: E402
from integrations.crypto import SecretBox  # noqa: E402
from integrations.kommo.sandbox import KommoSandbox  # noqa: E402
from salesflow.settings import Settings  # noqa: E402
from salesflow.stack import EmbeddedPostgres, TemporalDevServer, free_port  # noqa: E402
from salesflow.temporal import connect_client  # noqa: E402
from workers.registry import build_worker  # noqa: E402
from workflows.ids import TASK_QUEUE  # noqa: E402

BASELINE_QUEUE = "bench-baseline"
STEPS = [
    {"type": "send_message", "id": "hello", "text": "Hi {{ first_name }}", "next": "pause"},
    {"type": "wait", "id": "pause", "duration": "PT1S", "next": "again"},
    {"type": "send_message", "id": "again", "text": "Still there?"},
]


@activity.defn(name="bench.noop")
async def noop() -> None:
    """The baseline's one activity: nothing at all."""


@workflow.defn(sandboxed=False)
class BareWorkflow:
    """The baseline: one timer, then one activity."""

    @workflow.run
    async def run(self) -> None:
        """Sleep 1 s, then run the no-op activity."""
        await workflow.sleep(1)
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))


async def seed(sessions: async_sessionmaker[AsyncSession], settings: Settings, sandbox: KommoSandbox,
               leads: int) -> tuple[uuid.UUID, uuid.UUID, dict[str, str]]:
    """An organisation with a connected sandbox account, an active agent and ``leads`` leads."""
    account = sandbox.add_account(f"bench-{uuid.uuid4().hex[:8]}")
    box = SecretBox(settings.token_encryption_key)
    async with sessions() as session:
        org = Organization(name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}", time_zone="UTC")
        user = User(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
        session.add_all([org, user])
        await session.flush()
        agent = Agent(org_id=org.id, name="Bench agent", status=AgentStatus.active)
        session.add_all([Membership(org_id=org.id, user_id=user.id, role=Role.owner), agent])
        session.add(KommoConnection(
            org_id=org.id, account_id=account.id, subdomain=account.subdomain, base_url=sandbox.base_url,
            status=ConnectionStatus.connected, access_token_enc=box.encrypt(sandbox.long_lived_token(account)),
            long_lived=True, webhook_secret=uuid.uuid4().hex, chat_scope_id=account.scope_id,
            chat_channel_secret_enc=box.encrypt(account.channel_secret),
        ))
        await session.flush()
        await session.execute(insert(Lead), [
            {"id": uuid.uuid4(), "org_id": org.id, "kommo_id": 10_000_000 + i, "name": f"Lead {i}",
             "contact_name": f"Person {i}", "tags": [], "field_values": {}} for i in range(leads)])
        await session.commit()
        token = issue_access_token(AccessClaims(user.id, org.id, Role.owner.value), settings.jwt_secret, 3600)
        return org.id, agent.id, {"Authorization": f"Bearer {token}"}


async def counts(sessions: async_sessionmaker[AsyncSession], sequence_id: str) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(select(Enrollment.status, func.count()).where(
            Enrollment.sequence_id == uuid.UUID(sequence_id)).group_by(Enrollment.status))
        return {status.value if isinstance(status, EnrollmentStatus) else str(status): int(n) for status, n in rows}


async def events_per_workflow(client: Client, workflow_ids: list[str]) -> float:
    totals = [len((await client.get_workflow_handle(wid).fetch_history()).events) for wid in workflow_ids]
    return sum(totals) / len(totals)


async def sequence_fanout(client: Client, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                          sandbox: KommoSandbox, n: int) -> dict[str, float]:
    org_id, agent_id, headers = await seed(sessions, settings, sandbox, n)
    app = create_app(settings, sessions=sessions, temporal=client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                 timeout=300) as api:
        r = await api.post(f"/api/agents/{agent_id}/sequences", headers=headers,
                           json={"name": "Bench", "steps": STEPS, "send_window": {"any_time": True}})
        r.raise_for_status()
        sequence_id = r.json()["id"]
        async with sessions() as session:
            lead_ids = [str(x) for x in (await session.scalars(select(Lead.id).where(Lead.org_id == org_id))).all()]
        started = time.perf_counter()
        r = await api.post(f"/api/agents/{agent_id}/sequences/{sequence_id}/enrollments", headers=headers,
                           json={"lead_ids": lead_ids})
        r.raise_for_status()
        answered = time.perf_counter() - started
        enrolled = r.json()["enrolled"]
    begun_at: float | None = None
    while True:
        await asyncio.sleep(0.25)
        by_status = await counts(sessions, sequence_id)
        if begun_at is None and by_status.get("pending", 0) == 0:
            begun_at = time.perf_counter() - started
        if by_status.get("completed", 0) + by_status.get("failed", 0) >= enrolled:
            done_at = time.perf_counter() - started
            failed = by_status.get("failed", 0)
            break
    assert begun_at is not None
    async with sessions() as session:
        sample = list((await session.scalars(select(Enrollment.workflow_id).where(
            Enrollment.sequence_id == uuid.UUID(sequence_id)).limit(20))).all())
    events = await events_per_workflow(client, sample)
    return {"enrolled": enrolled, "request_s": answered, "begun_s": begun_at, "done_s": done_at,
            "enrol_per_s": enrolled / begun_at, "steps_per_s": 3 * enrolled / done_at,
            "events_per_step": events / 3, "failed": failed, "sent": len(sandbox.delivered_messages)}


async def baseline(client: Client, n: int, concurrency: int = 50) -> dict[str, float]:
    semaphore = asyncio.Semaphore(concurrency)
    prefix = uuid.uuid4().hex[:8]
    handles = []
    started = time.perf_counter()

    async def start(i: int) -> None:
        async with semaphore:
            handles.append(await client.start_workflow(BareWorkflow.run, id=f"bench-bare-{prefix}-{i}",
                                                       task_queue=BASELINE_QUEUE))

    await asyncio.gather(*(start(i) for i in range(n)))
    start_s = time.perf_counter() - started
    await asyncio.gather(*(h.result() for h in handles))
    done_s = time.perf_counter() - started
    events = await events_per_workflow(client, [h.id for h in handles[:20]])
    return {"start_s": start_s, "done_s": done_s, "start_per_s": n / start_s, "done_per_s": n / done_s,
            "events_per_workflow": events}


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="salesflow-bench-"))
    database_url, temporal_address = os.environ.get("DATABASE_URL"), os.environ.get("TEMPORAL_ADDRESS")
    postgres = temporal = None
    if database_url is None:
        postgres = EmbeddedPostgres(tmp / "pg", free_port())
        await asyncio.to_thread(postgres.start)
        database_url = postgres.url
    if temporal_address is None:
        temporal = TemporalDevServer(tmp / "temporal.db", free_port(), None)
        await asyncio.to_thread(temporal.start, tmp / "temporal.log")
        temporal_address = temporal.address
    sandbox = KommoSandbox(rate_limit=None)
    await sandbox.start()
    try:
        await upgrade_async(database_url)
        settings = Settings(database_url=database_url, temporal_address=temporal_address,
                            kommo_amojo_url=sandbox.base_url, kommo_api_base_url=sandbox.base_url,
                            data_dir=tmp, log_level="WARNING")
        engine = create_engine(database_url)
        sessions = create_sessionmaker(engine)
        client = await connect_client(settings)
        http = httpx.AsyncClient(timeout=30)
        worker = build_worker(client, sessions, settings=settings, http=http)
        bare = Worker(client, task_queue=BASELINE_QUEUE, workflows=[BareWorkflow], activities=[noop])
        async with worker, bare:
            print(f"server {temporal_address} ({'dev server, SQLite WAL' if temporal else 'external'}), "
                  f"queue {TASK_QUEUE}, {args.leads} leads, {os.cpu_count()} CPUs", flush=True)
            fan = await sequence_fanout(client, sessions, settings, sandbox, args.leads)
            print(f"sequence fan-out: {fan['enrolled']:.0f} enrolled (request answered in {fan['request_s']:.2f} s); "
                  f"all begun after {fan['begun_s']:.1f} s = {fan['enrol_per_s']:.0f} enrolments/s; "
                  f"all 3 steps done after {fan['done_s']:.1f} s = {fan['steps_per_s']:.0f} steps/s; "
                  f"{fan['events_per_step']:.1f} history events/step; {fan['sent']:.0f} messages delivered, "
                  f"{fan['failed']:.0f} failed", flush=True)
            base = await baseline(client, args.leads)
            print(f"baseline (timer + one activity): {base['start_per_s']:.0f} started/s, "
                  f"{base['done_per_s']:.0f} completed/s (all done after {base['done_s']:.1f} s); "
                  f"{base['events_per_workflow']:.1f} history events/workflow "
                  f"= {base['events_per_workflow'] / 2:.1f}/step (timer, activity)", flush=True)
        await http.aclose()
        await engine.dispose()
    finally:
        await sandbox.stop()
        if temporal is not None:
            temporal.stop()
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=5000, help="leads to enrol (default 5000)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
