"""Benchmark: Kommo CRM webhook intake (form-encoded lead-status events) against a running API.

By default it starts its own local stack (embedded Postgres, Temporal dev server, worker, API) on
free ports in a temporary directory, plus a Kommo sandbox the API and worker talk to, registers an
organisation and connects it through the API. Then, in the same run, it measures

1. the raw ``start_workflow`` rate of that Temporal server (no worker, same concurrency), and
2. webhook intake: N single-event POSTs with bounded concurrency -> accepted events/s, p50/p99,

and checks that every accepted event produced exactly one workflow run (inbox rows in Postgres
against CrmEventWorkflow runs in Temporal visibility).

    .venv/bin/python bench/webhook_intake.py --events 2000 --concurrency 50

Against an existing deployment instead (no stack, no DB check)::

    .venv/bin/python bench/webhook_intake.py --webhook-url 'http://host/api/crm/webhook?org=..&secret=..' \\
        --account-id 123 --subdomain acme --temporal-address host:7233

Prints figures; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.common import WorkflowIDConflictPolicy  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from integrations.kommo.sandbox import KommoSandbox  # noqa: E402
from integrations.kommo.webhooks import encode_crm_webhook  # noqa: E402


@dataclass
class Target:
    """Where to send webhooks and which Kommo account they claim to come from."""

    webhook_url: str
    account_id: int
    subdomain: str
    temporal_address: str
    org_id: str | None = None
    database_url: str | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


@contextmanager
def children_output_to(log_file: Path) -> Any:
    """Children inherit our stdout/stderr; point them at a log file while they are spawned."""
    saved = os.dup(1), os.dup(2)
    with log_file.open("ab") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


async def raw_start_rate(address: str, n: int, concurrency: int) -> float:
    """Workflows/s that ``start_workflow`` alone achieves on this server (no worker polls the queue)."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    gate = asyncio.Semaphore(concurrency)
    run = uuid.uuid4().hex[:8]

    async def start(i: int) -> None:
        async with gate:
            await client.start_workflow(
                "BenchNoopWorkflow", id=f"bench-raw/{run}/{i}", task_queue=f"bench-noop-{run}",
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )

    started = time.perf_counter()
    await asyncio.gather(*(start(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def drive_webhooks(target: Target, n: int, concurrency: int) -> tuple[int, float, list[float], int]:
    """POST n single-event webhooks; returns (accepted, seconds, latencies, failures)."""
    bodies = [
        encode_crm_webhook(target.account_id, target.subdomain, [
            {"entity": "lead", "action": "status", "id": 10_000_000 + i, "status_id": 142, "pipeline_id": 1,
             "old_status_id": 2, "last_modified": 1_700_000_000 + i}])
        for i in range(n)
    ]
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    accepted = failures = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def send(body: str) -> None:
            nonlocal accepted, failures
            async with gate:
                t0 = time.perf_counter()
                r = await http.post(target.webhook_url, content=body,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
                latencies.append(time.perf_counter() - t0)
                if r.status_code == 200:
                    accepted += int(r.json()["accepted"])
                else:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(send(b) for b in bodies))
        elapsed = time.perf_counter() - started
    return accepted, elapsed, latencies, failures


async def verify(target: Target, accepted: int) -> str:
    """Compare inbox rows (DB) with CrmEventWorkflow runs (Temporal visibility) for the org."""
    client = await Client.connect(target.temporal_address, data_converter=pydantic_data_converter)
    prefix = f"crm-event/{target.org_id}/"
    query = f'WorkflowType = "CrmEventWorkflow" AND OrgId = "{target.org_id}"'
    runs: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = [wf.id async for wf in client.list_workflows(query) if wf.id.startswith(prefix)]
        if len(runs) >= accepted:
            break
        await asyncio.sleep(1)
    inbox: set[str] = set()
    if target.database_url:
        from db.models import InboxEvent
        from db.session import create_engine, create_sessionmaker

        engine = create_engine(target.database_url)
        async with create_sessionmaker(engine)() as session:
            rows = await session.scalars(select(InboxEvent.workflow_id).where(
                InboxEvent.org_id == uuid.UUID(target.org_id or ""), InboxEvent.workflow_id.is_not(None)))
            inbox = {w for w in rows if w}
            total = await session.scalar(select(func.count()).select_from(InboxEvent).where(
                InboxEvent.org_id == uuid.UUID(target.org_id or "")))
        await engine.dispose()
        if total != accepted:
            return f"FAILED: {total} inbox rows for {accepted} accepted events"
    duplicates = len(runs) - len(set(runs))
    if duplicates or len(runs) != accepted or (inbox and inbox != set(runs)):
        return (f"FAILED: {len(runs)} workflow runs ({duplicates} duplicate ids) for {accepted} accepted events; "
                f"inbox/workflow mismatch: {len(inbox ^ set(runs)) if inbox else 'n/a'}")
    return f"ok: {accepted} accepted events -> {len(runs)} CrmEventWorkflow runs, one per inbox row"


async def own_stack_target(sandbox: KommoSandbox, stack: Any, effective: Any, api_port: int, log: Path) -> Target:
    """Point the children at the sandbox, start worker + API, register an org and connect it."""
    base = f"http://127.0.0.1:{api_port}"
    os.environ.update({
        "SALESFLOW_API_HOST": "127.0.0.1", "SALESFLOW_API_PORT": str(api_port), "SALESFLOW_PUBLIC_BASE_URL": base,
        "SALESFLOW_KOMMO_API_BASE_URL": sandbox.base_url, "SALESFLOW_KOMMO_OAUTH_URL": sandbox.base_url,
        "SALESFLOW_KOMMO_AMOJO_URL": sandbox.base_url, "SALESFLOW_LOG_LEVEL": "WARNING",
    })
    with children_output_to(log):
        await asyncio.to_thread(stack.start_processes, effective)
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        for _ in range(600):
            try:
                if (await api.get("/api/health/ready")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"API did not become ready; see {log}")
        reg = await api.post("/api/auth/register", json={
            "email": f"bench-{uuid.uuid4().hex[:8]}@example.com", "password": "bench-passw0rd!",
            "organization_name": "Bench Co"})
        reg.raise_for_status()
        headers = {"Authorization": f"Bearer {reg.json()['access_token']}"}
        account = sandbox.add_account(f"bench{uuid.uuid4().hex[:6]}")
        connected = await api.post("/api/integrations/kommo/credentials", headers=headers, json={
            "subdomain": account.subdomain, "access_token": sandbox.long_lived_token(account)})
        connected.raise_for_status()
        crm = (await api.get("/api/crm/kommo", headers=headers)).json()
    org_id = parse_qs(urlsplit(crm["webhook_url"]).query)["org"][0]
    return Target(webhook_url=crm["webhook_url"], account_id=account.id, subdomain=account.subdomain,
                  temporal_address=str(effective.temporal_address), org_id=org_id,
                  database_url=effective.database_url)


async def run(args: argparse.Namespace) -> None:
    """Set up (or use) a target, measure, verify, print."""
    stack = None
    sandbox: KommoSandbox | None = None
    tmp = Path(tempfile.mkdtemp(prefix="salesflow-bench-"))
    try:
        if args.webhook_url:
            target = Target(webhook_url=args.webhook_url, account_id=args.account_id, subdomain=args.subdomain,
                            temporal_address=args.temporal_address)
        else:
            from salesflow.launcher import LocalStack
            from salesflow.settings import Settings
            from salesflow.stack import free_port

            api_port = free_port()
            settings = Settings().model_copy(update={
                "data_dir": tmp, "database_url": None, "temporal_address": None,
                "embedded_postgres_port": free_port(), "temporal_dev_port": free_port(),
                "temporal_ui_port": free_port(), "api_port": api_port,
            })
            stack = LocalStack(settings)
            print(f"starting local stack in {tmp} ...", flush=True)
            with children_output_to(tmp / "stack.log"):
                effective = await asyncio.to_thread(stack.start_services)
            # Kommo's own limit is not what this measures; our limiter still applies in the worker.
            sandbox = KommoSandbox(rate_limit=None)
            await sandbox.start()
            target = await own_stack_target(sandbox, stack, effective, api_port, tmp / "stack.log")

        raw = await raw_start_rate(target.temporal_address, args.events, args.concurrency)
        worker_pid = stack.children[0].pid if stack is not None and args.pause_worker else None
        if worker_pid is not None:
            # Intake alone: the worker would otherwise share the CPU and the Temporal server meanwhile.
            os.kill(worker_pid, signal.SIGSTOP)
        try:
            accepted, elapsed, latencies, failures = await drive_webhooks(target, args.events, args.concurrency)
        finally:
            if worker_pid is not None:
                os.kill(worker_pid, signal.SIGCONT)
        mode = "paused" if args.pause_worker else "running"
        print(f"events sent          {args.events} (concurrency {args.concurrency}, worker {mode} during intake)")
        print(f"accepted             {accepted} ({failures} non-200 answers)")
        print(f"accepted events/s    {accepted / elapsed:.0f}")
        p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
        print(f"latency p50 / p99    {p50:.0f} ms / {p99:.0f} ms")
        print(f"raw start_workflow/s {raw:.0f} (same server, same concurrency, no worker)")
        if target.org_id:
            print(f"exactly-once check   {await verify(target, accepted)}")
    finally:
        # The worker first, so its in-flight Kommo calls do not fail against a stopped sandbox.
        if stack is not None:
            with children_output_to(tmp / "stack.log"):
                await asyncio.to_thread(stack.stop)
        if sandbox is not None:
            await sandbox.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--webhook-url", help="use a running API instead of a local stack")
    parser.add_argument("--account-id", type=int, default=0, help="Kommo account id of the connection")
    parser.add_argument("--subdomain", default="acme", help="Kommo subdomain of the connection")
    parser.add_argument("--temporal-address", default="127.0.0.1:7233")
    parser.add_argument("--pause-worker", action="store_true",
                        help="own stack only: stop the worker while webhooks are sent (intake alone)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory and logs")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
